"""Quotes, bars and symbols as users see them: real-time for holders of ``trading.realtime``, delayed for the rest.

Every answer says whether it is delayed (and by how much) and whether the
prices are simulated, so that pages can say so next to every figure.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kernel import ApiError, Kernel, User, iso
from plugins.trading.assets import Asset
from plugins.trading.market import RANGES, MarketData, Quote
from plugins.trading.settings import TradingSettings

REALTIME = "trading.realtime"
# How long a delayed quote drawn in a post's cashtag chip is reused: posts render often, prices need not
# be fresher than this for a chip that is 15 minutes late anyway.
CHIP_QUOTE_SECONDS = 5.0


def symbol_key(raw: str) -> str:
    """A symbol as written by a user (``$tsla``, `` BTC``) as the market names it (``TSLA``)."""
    return raw.strip().lstrip("$").upper()


def unknown_symbol(symbol: str) -> ApiError:
    return ApiError(404, "unknown_symbol", f"There is no symbol {symbol!r}.", symbol=symbol)


def asset_json(asset: Asset) -> dict[str, Any]:
    return {"symbol": asset.symbol, "name": asset.name, "exchange": asset.exchange, "asset_class": asset.asset_class}


@dataclass(frozen=True)
class Tier:
    """How fresh a user's prices are."""

    delay: timedelta

    @property
    def delayed(self) -> bool:
        return self.delay > timedelta(0)


class Quotes:
    """The market, seen through each user's quote tier."""

    def __init__(self, kernel: Kernel, settings: TradingSettings, market: MarketData) -> None:
        self.kernel = kernel
        self.settings = settings
        self.market = market
        self.delayed_tier = Tier(timedelta(minutes=settings.delay_minutes))
        self.realtime_tier = Tier(timedelta(0))
        self._chip_quotes: dict[str, tuple[float, dict[str, Any]]] = {}
        self._chip_lock = threading.Lock()

    def tier(self, user: User | None) -> Tier:
        """Real time with the feature ``trading.realtime``; else the settings' delay. Blocking (may read plans)."""
        if user is not None and self.kernel.entitlements.check(user, REALTIME).allowed:
            return self.realtime_tier
        return self.delayed_tier

    def asset(self, symbol: str) -> Asset:
        """The asset ``symbol`` names (any case, an optional leading ``$``); 404 ``unknown_symbol``."""
        asset = self.market.asset(symbol_key(symbol)) if len(symbol) <= 16 else None
        if asset is None:
            raise unknown_symbol(symbol)
        return asset

    def search(self, query: str, limit: int) -> list[dict[str, Any]]:
        return [asset_json(asset) for asset in self.market.search(query, limit)]

    def quote(self, symbol: str, tier: Tier, now: datetime | None = None) -> dict[str, Any]:
        """The quote of ``symbol`` for ``tier``, as the API shows it."""
        asset = self.asset(symbol)
        # Whole seconds: the quote is exactly the one its as_of names.
        at = (now or datetime.now(UTC)).replace(microsecond=0) - tier.delay
        return self.quote_json(asset, self.market.quote(asset.symbol, at), tier)

    def chip_quote(self, symbol: str) -> dict[str, Any]:
        """The delayed quote of a known ``symbol``, reused for a few seconds (cashtag chips; blocking)."""
        now = time.monotonic()
        with self._chip_lock:
            cached = self._chip_quotes.get(symbol)
        if cached is not None and now - cached[0] < CHIP_QUOTE_SECONDS:
            return cached[1]
        quote = self.quote(symbol, self.delayed_tier)
        with self._chip_lock:
            self._chip_quotes[symbol] = (now, quote)
        return quote

    def quote_json(self, asset: Asset, quote: Quote, tier: Tier) -> dict[str, Any]:
        return {
            **asset_json(asset),
            "price": quote.price,
            "change": _round(quote.change, quote.price),
            "change_pct": round(quote.change_pct, 2),
            "previous_close": quote.previous_close,
            "open": quote.open,
            "high": quote.high,
            "low": quote.low,
            "currency": "USD",
            "as_of": iso(quote.as_of.replace(tzinfo=None)),
            "market_open": quote.market_open,
            "delayed": tier.delayed,
            "delay_minutes": int(tier.delay.total_seconds() // 60),
            "simulated": self.market.simulated,
        }

    def bars(self, symbol: str, range_: str, tier: Tier) -> dict[str, Any]:
        """History of ``symbol`` over ``range_`` (1D, 5D, 1M, 1Y), ending where ``tier``'s quotes stand."""
        if range_ not in RANGES:
            raise ApiError(422, "validation_error", f"range: one of {', '.join(RANGES)}.", field="range")
        asset = self.asset(symbol)
        at = datetime.now(UTC) - tier.delay
        bars = self.market.bars(asset.symbol, range_, at)
        return {
            "symbol": asset.symbol,
            "range": range_,
            "bars": [
                {"t": iso(bar.start.replace(tzinfo=None)), "o": bar.open, "h": bar.high, "l": bar.low, "c": bar.close}
                for bar in bars
            ],
            "delayed": tier.delayed,
            "delay_minutes": int(tier.delay.total_seconds() // 60),
            "simulated": self.market.simulated,
        }


def _round(change: float, price: float) -> float:
    return round(change, 2) if price >= 1 else float(f"{change:.4g}")
