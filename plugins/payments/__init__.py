"""Payments: premium subscriptions, a wallet and peer-to-peer transfers.

For now the plugin declares only its manifest; its features arrive with its own issue.
"""

from kernel import Manifest, hookimpl

__version__ = "0.1.0"


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="payments",
        title="Payments",
        version=__version__,
        description="Premium subscriptions, a wallet and peer-to-peer transfers.",
    )
