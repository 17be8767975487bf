"""Which market data provider a deployment uses: the simulated market, or one an operator names in the settings."""

from __future__ import annotations

import importlib

from plugins.trading.market import MarketData
from plugins.trading.settings import TradingSettings
from plugins.trading.simulated import SimulatedMarket


def load_provider(settings: TradingSettings) -> MarketData:
    """The provider ``settings.provider`` names: ``simulated``, or ``package.module:factory`` called with the settings.

    Raises ``ValueError`` naming the setting when the factory cannot be found.
    """
    if settings.provider == "simulated":
        return SimulatedMarket(settings.seed)
    module_name, _, attribute = settings.provider.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"plugins.trading.provider: cannot load {settings.provider!r}: {error}") from error
    return factory(settings)
