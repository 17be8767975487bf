"""``[plugins.trading]``: the market data provider, the free tier's delay and the paper accounts' cash."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TradingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # "simulated" (the embedded market), or "package.module:factory" for another provider: the factory is
    # called with this settings object and returns a plugins.trading.market.MarketData.
    provider: str = Field(default="simulated", min_length=1, pattern=r"^(simulated|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$")
    # The simulated market's seed: the same seed gives the same prices.
    seed: int = 1
    # Quotes for users without the feature trading.realtime are this many minutes old.
    delay_minutes: int = Field(default=15, ge=0, le=24 * 60)
    # How often live prices are sent to subscribers, in seconds.
    tick_seconds: float = Field(default=1.0, ge=0.1, le=60)
    # A user may follow at most this many symbols live (trading.subscribe) and watch this many.
    max_subscriptions: int = Field(default=100, ge=1, le=1000)
    max_watchlist: int = Field(default=100, ge=1, le=1000)
    # A new paper account's cash, in cents.
    starting_cash: int = Field(default=100_000_00, ge=0)
