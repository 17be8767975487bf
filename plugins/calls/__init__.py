"""Calls: audio and video calls by username, with call screening.

For now the plugin declares only its manifest; its features arrive with its own issue.
"""

from kernel import Manifest, hookimpl

__version__ = "0.1.0"


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="calls",
        title="Calls",
        version=__version__,
        description="Audio and video calls by username, with call screening.",
    )
