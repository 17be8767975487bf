"""Trading: cashtags, quotes, watchlists and paper trading.

For now the plugin declares only its manifest; its features arrive with its own issue.
"""

from kernel import Manifest, hookimpl

__version__ = "0.1.0"


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="trading",
        title="Trading",
        version=__version__,
        description="Cashtags, quotes, watchlists and paper trading.",
    )
