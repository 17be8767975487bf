"""Feed: posts, long-form posts, media, timelines, mentions and hashtags.

For now the plugin declares only its manifest; its features arrive with its own issue.
"""

from kernel import Manifest, hookimpl

__version__ = "0.1.0"


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="feed",
        title="Feed",
        version=__version__,
        description="Posts, long-form posts, media, timelines, mentions and hashtags.",
    )
