"""A market data provider whose prices a test sets, plugged in the way an operator plugs one in.

``[plugins.trading] provider = "tests.trading_kit:ScriptedMarket"``: the
simulated market's symbols, history and hours, except that a test fixes a
symbol's price (``set_price``) and whether its market is open
(``set_open``), so that an order's fill can be made to happen, or not, on
purpose.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from plugins.trading.market import Quote
from plugins.trading.settings import TradingSettings
from plugins.trading.simulated import SimulatedMarket


class ScriptedMarket(SimulatedMarket):
    def __init__(self, settings: TradingSettings) -> None:
        super().__init__(settings.seed)
        self.prices: dict[str, float] = {}
        self.open: dict[str, bool] = {}
        self.closes: dict[str, datetime] = {}

    def set_price(self, symbol: str, price: float) -> None:
        self.prices[symbol] = price

    def set_open(self, symbol: str, is_open: bool, closes_at: datetime | None = None) -> None:
        self.open[symbol] = is_open
        if closes_at is not None:
            self.closes[symbol] = closes_at

    def quote(self, symbol: str, at: datetime) -> Quote:
        quote = super().quote(symbol, at)  # its market_open is already this class's
        if symbol not in self.prices:
            return quote
        price = self.prices[symbol]
        return replace(quote, price=price, high=max(quote.high, price), low=min(quote.low, price))

    def market_open(self, symbol: str, at: datetime) -> bool:
        return self.open.get(symbol, True)

    def session_close(self, symbol: str, at: datetime) -> datetime | None:
        return self.closes.get(symbol) or at + timedelta(hours=6)
