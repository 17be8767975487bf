"""The market data provider interface: symbols, quotes, history bars and ticks.

The embedded provider is :class:`plugins.trading.simulated.SimulatedMarket`;
an operator plugs another one in with ``[plugins.trading] provider =
"package.module:factory"`` (docs/trading.md). A provider answers for any
moment up to now, so that the plugin can serve quotes delayed by 15 minutes
to the free tier with the same call it serves real-time ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from plugins.trading.assets import Asset

Range = Literal["1D", "5D", "1M", "1Y"]
RANGES: tuple[Range, ...] = ("1D", "5D", "1M", "1Y")


@dataclass(frozen=True)
class Quote:
    """An asset's price at one moment, and its move over the day (for crypto: the last 24 hours)."""

    symbol: str
    price: float
    previous_close: float  # where the day's change is measured from
    open: float
    high: float
    low: float
    as_of: datetime  # UTC
    market_open: bool

    @property
    def change(self) -> float:
        return self.price - self.previous_close

    @property
    def change_pct(self) -> float:
        return 100.0 * self.change / self.previous_close if self.previous_close else 0.0


@dataclass(frozen=True)
class Bar:
    """Open, high, low and close over one interval starting at ``start`` (UTC)."""

    start: datetime
    open: float
    high: float
    low: float
    close: float


class MarketData(Protocol):
    """What the trading plugin asks of a market data provider. Calls may block briefly (run off the event loop)."""

    #: Shown on every page and in every quote: True for invented prices.
    simulated: bool

    def assets(self) -> list[Asset]:
        """Every asset the provider quotes."""
        ...

    def asset(self, symbol: str) -> Asset | None:
        """The asset named ``symbol`` (upper case), or None."""
        ...

    def search(self, query: str, limit: int) -> list[Asset]:
        """Assets whose symbol or name matches ``query``: exact symbol first, then symbol prefixes, then names."""
        ...

    def quote(self, symbol: str, at: datetime) -> Quote:
        """The quote as it stood at ``at`` (UTC, not in the future)."""
        ...

    def bars(self, symbol: str, range_: Range, at: datetime) -> list[Bar]:
        """History over ``range_`` ending at ``at``, oldest first."""
        ...

    def market_open(self, symbol: str, at: datetime) -> bool:
        """Whether ``symbol`` trades at ``at`` (stocks: exchange hours; crypto: always)."""
        ...

    def session_close(self, symbol: str, at: datetime) -> datetime | None:
        """When the session open at ``at`` (or, while closed, the next one) closes; None for round-the-clock assets."""
        ...

    def ticks(self, symbols: Callable[[], Collection[str]], every: float) -> AsyncIterator[list[Quote]]:
        """Real-time quotes, as they come: each batch holds the latest quote of the symbols ``symbols()``
        names at that moment (asked again before every batch, so subscriptions may change), at most one
        batch every ``every`` seconds. Runs until cancelled.

        Every server process of a deployment runs its own stream for its own sockets' symbols, and its
        ticks go to those sockets directly, never over the bus: a provider must answer every process
        alike (docs/realtime.md, the numbers of bench/quotes.py --servers 2)."""
        ...
