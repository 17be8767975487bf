"""Spaces: live audio rooms with hosts, speakers and listeners.

For now the plugin declares only its manifest; its features arrive with its own issue.
"""

from kernel import Manifest, hookimpl

__version__ = "0.1.0"


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="spaces",
        title="Spaces",
        version=__version__,
        description="Live audio rooms with hosts, speakers and listeners.",
    )
