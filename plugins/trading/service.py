"""The trading plugin on one kernel: its market, quotes by tier, watchlists, live ticks and paper trading.

:data:`TRADING` holds one :class:`Trading` per kernel.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kernel import Kernel, PluginState, User
from plugins.trading.matcher import Matcher
from plugins.trading.paper import PaperBroker
from plugins.trading.provider import load_provider
from plugins.trading.quotes import Quotes
from plugins.trading.settings import TradingSettings
from plugins.trading.ticker import Ticker
from plugins.trading.watchlist import Watchlists


class Trading:
    def __init__(self, kernel: Kernel, settings: TradingSettings) -> None:
        self.kernel = kernel
        self.settings = settings
        self.market = load_provider(settings)
        self.quotes = Quotes(kernel, settings, self.market)
        self.watchlists = Watchlists(kernel, settings.max_watchlist)
        self.ticker = Ticker(kernel, self.quotes, settings.tick_seconds)
        self.broker = PaperBroker(kernel, settings, self.quotes)
        self.matcher = Matcher(kernel, self.broker, settings.tick_seconds)

    def watchlist_quotes(self, user: User) -> list[dict[str, Any]]:
        """The user's watchlist with a quote of each symbol for their tier (blocking)."""
        tier = self.quotes.tier(user)
        now = datetime.now(UTC)
        return [self.quotes.quote(symbol, tier, now) for symbol in self.watchlists.symbols(user)]

    def watch(self, user: User, symbol: str) -> tuple[bool, dict[str, Any]]:
        """Add ``symbol`` to the user's watchlist: (whether it is new, its quote)."""
        asset = self.quotes.asset(symbol)
        added = self.watchlists.add(user, asset.symbol)
        return added, self.quotes.quote(asset.symbol, self.quotes.tier(user))

    def unwatch(self, user: User, symbol: str) -> None:
        """Remove ``symbol`` from the user's watchlist (404 ``unknown_symbol`` for a symbol that does not exist)."""
        self.watchlists.remove(user, self.quotes.asset(symbol).symbol)


TRADING: PluginState[Trading] = PluginState("trading")
