"""The embedded market data provider: a deterministic simulated market over the built-in assets.

Every price is a pure function of (seed, symbol, moment): two processes, or
two runs, with the same seed show the same prices, and any past moment can
be asked for (the free tier's 15-minute delay, history bars) without
storing anything.

The path of an asset's log price is built on its own clock of trading time:
for crypto, every second since the epoch; for stocks, only the seconds of
regular sessions (weekdays 9:30–16:00 America/New_York; exchange holidays
are not modelled), so a stock's price stands still while its market is
closed. On that clock:

* each trading day ends at a level drawn from a mean-reverting random walk
  (daily steps of the asset's volatility, pulled gently back towards its
  typical price, so that prices stay recognisable for years);
* within a day, the price moves from one day's level to the next along a
  Brownian bridge sampled every minute, and linearly between minutes.

Random numbers come from NumPy generators seeded by (seed, symbol, block),
never from Python's ``hash``, which differs between processes.
"""

from __future__ import annotations

import asyncio
import functools
import math
import zlib
from collections.abc import AsyncIterator, Callable, Collection
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from plugins.trading.assets import ASSETS, BY_SYMBOL, Asset
from plugins.trading.market import Bar, Quote, Range

NEW_YORK = ZoneInfo("America/New_York")
SESSION_OPEN, SESSION_CLOSE = time(9, 30), time(16, 0)
SESSION_SECONDS = 6 * 3600 + 30 * 60
CRYPTO_DAY_SECONDS = 86_400
EPOCH = date(2020, 1, 1)
EPOCH_UTC = datetime(2020, 1, 1, tzinfo=UTC)
DAYS_PER_BLOCK = 512
REVERSION = 1 / 250  # of the distance to the typical price, per day: a half-life of about 170 trading days


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class _Path:
    """One asset's log-price path on its trading clock."""

    def __init__(self, seed: int, asset: Asset) -> None:
        self.asset = asset
        self.key = [seed, zlib.crc32(asset.symbol.encode())]
        self.day_seconds = CRYPTO_DAY_SECONDS if asset.trades_around_the_clock else SESSION_SECONDS
        self.minutes = self.day_seconds // 60
        days_per_year = 365 if asset.trades_around_the_clock else 252
        self.daily_sigma = asset.volatility / math.sqrt(days_per_year)
        self.levels = np.zeros(0)  # log level (relative to the typical price) at the end of each trading day

    def level(self, day: int) -> float:
        while day >= len(self.levels):
            self._extend()
        return float(self.levels[day])

    def _extend(self) -> None:
        block = len(self.levels) // DAYS_PER_BLOCK
        steps = np.random.default_rng([*self.key, 0, block]).standard_normal(DAYS_PER_BLOCK) * self.daily_sigma
        levels = np.empty(DAYS_PER_BLOCK)
        current = self.levels[-1] if len(self.levels) else 0.0
        for index, step in enumerate(steps):
            current = current * (1 - REVERSION) + step
            levels[index] = current
        self.levels = np.concatenate([self.levels, levels])

    @functools.lru_cache(maxsize=2048)  # noqa: B019 - one path per asset for the provider's life
    def day_curve(self, day: int) -> np.ndarray:
        """Log prices at each minute of trading day ``day`` (``minutes + 1`` points, from the open to the close)."""
        start = self.level(day - 1) if day > 0 else 0.0
        end = self.level(day)
        steps = np.random.default_rng([*self.key, 1, day]).standard_normal(self.minutes)
        walk = np.concatenate([[0.0], np.cumsum(steps)]) * (self.daily_sigma / math.sqrt(self.minutes))
        share = np.linspace(0.0, 1.0, self.minutes + 1)
        bridge = walk - share * walk[-1]
        return start + share * (end - start) + bridge

    def log_prices(self, clocks: np.ndarray) -> np.ndarray:
        """The log prices (relative to the typical price) at ``clocks`` seconds of trading time."""
        days = (clocks // self.day_seconds).astype(np.int64)
        minutes = (clocks - days * self.day_seconds) / 60.0
        result = np.empty(len(clocks))
        grid = np.arange(self.minutes + 1)
        for day in np.unique(days):
            where = days == day
            result[where] = np.interp(minutes[where], grid, self.day_curve(int(day)))
        return result

    def prices(self, clocks: np.ndarray) -> np.ndarray:
        return self.asset.base_price * np.exp(self.log_prices(clocks))


def _round_price(price: float) -> float:
    """Cents for prices of a dollar and more; four significant digits below (a coin at $0.30 moves in 0.0001s)."""
    price = float(price)
    if price >= 1:
        return round(price, 2)
    return float(f"{price:.4g}")


class SimulatedMarket:
    """:class:`plugins.trading.market.MarketData` over :data:`plugins.trading.assets.ASSETS`, from ``seed``."""

    simulated = True

    def __init__(self, seed: int = 1) -> None:
        self.seed = seed
        self._paths = {asset.symbol: _Path(seed, asset) for asset in ASSETS}

    # Symbols --------------------------------------------------------------------------------

    def assets(self) -> list[Asset]:
        return list(ASSETS)

    def asset(self, symbol: str) -> Asset | None:
        return BY_SYMBOL.get(symbol.upper())

    def search(self, query: str, limit: int) -> list[Asset]:
        needle = query.strip().lstrip("$").upper()
        if not needle:
            return list(ASSETS[:limit])
        exact = [a for a in ASSETS if a.symbol == needle]
        prefix = [a for a in ASSETS if a.symbol.startswith(needle) and a.symbol != needle]
        named = [a for a in ASSETS if needle in a.name.upper() and a not in exact and a not in prefix]
        return (exact + prefix + named)[:limit]

    # Clocks -----------------------------------------------------------------------------------

    def market_open(self, symbol: str, at: datetime) -> bool:
        asset = self._asset(symbol)
        if asset.trades_around_the_clock:
            return True
        local = _utc(at).astimezone(NEW_YORK)
        return local.weekday() < 5 and SESSION_OPEN <= local.time() < SESSION_CLOSE

    def session_close(self, symbol: str, at: datetime) -> datetime | None:
        asset = self._asset(symbol)
        if asset.trades_around_the_clock:
            return None
        local = _utc(at).astimezone(NEW_YORK)
        day = local.date()
        if local.weekday() >= 5 or local.time() >= SESSION_CLOSE:
            day += timedelta(days=1)
            while day.weekday() >= 5:
                day += timedelta(days=1)
        return datetime.combine(day, SESSION_CLOSE, NEW_YORK).astimezone(UTC)

    def _clock(self, asset: Asset, at: datetime) -> float:
        """Seconds of trading time from the epoch to ``at``."""
        at = _utc(at)
        if asset.trades_around_the_clock:
            return max((at - EPOCH_UTC).total_seconds(), 0.0)
        local = at.astimezone(NEW_YORK)
        days_before = int(np.busday_count(EPOCH, local.date()))
        if local.weekday() >= 5:
            return days_before * SESSION_SECONDS
        opened = datetime.combine(local.date(), SESSION_OPEN, NEW_YORK)
        into = min(max((local - opened).total_seconds(), 0.0), SESSION_SECONDS)
        return days_before * SESSION_SECONDS + into

    def _session_start(self, asset: Asset, at: datetime) -> datetime:
        """When the session ``at`` belongs to opened: the latest open at or before ``at`` (crypto: 24 hours before)."""
        at = _utc(at)
        if asset.trades_around_the_clock:
            return at - timedelta(days=1)
        local = at.astimezone(NEW_YORK)
        day = local.date()
        if local.weekday() >= 5 or local.time() < SESSION_OPEN:
            day = _previous_weekday(day)
        while day.weekday() >= 5:
            day = _previous_weekday(day)
        return datetime.combine(day, SESSION_OPEN, NEW_YORK).astimezone(UTC)

    # Prices ------------------------------------------------------------------------------------

    def price(self, symbol: str, at: datetime) -> float:
        """``symbol``'s price at ``at``."""
        asset = self._asset(symbol)
        return _round_price(float(self._paths[asset.symbol].prices(np.array([self._clock(asset, at)]))[0]))

    def quote(self, symbol: str, at: datetime) -> Quote:
        asset = self._asset(symbol)
        path = self._paths[asset.symbol]
        at = _utc(at)
        start = self._session_start(asset, at)
        begin, now = self._clock(asset, start), self._clock(asset, at)
        # The day's range from its minutes so far, and the moments at both ends.
        samples = path.prices(np.append(np.arange(begin, now, 60.0), now))
        previous = _round_price(samples[0])
        return Quote(
            symbol=asset.symbol,
            price=_round_price(samples[-1]),
            previous_close=previous,
            open=previous,
            high=_round_price(samples.max()),
            low=_round_price(samples.min()),
            as_of=at,
            market_open=self.market_open(asset.symbol, at),
        )

    def bars(self, symbol: str, range_: Range, at: datetime) -> list[Bar]:
        asset = self._asset(symbol)
        at = _utc(at)
        if range_ == "1D":
            starts = self._intraday_starts(asset, at, sessions=1, minutes=5 if not asset.trades_around_the_clock else 15)
        elif range_ == "5D":
            starts = self._intraday_starts(asset, at, sessions=5, minutes=30 if not asset.trades_around_the_clock else 60)
        else:
            starts = self._daily_starts(asset, at, 31 if range_ == "1M" else 365)
        return self._bars(asset, starts, at)

    async def ticks(self, symbols: Callable[[], Collection[str]], every: float) -> AsyncIterator[list[Quote]]:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            now = datetime.now(UTC)
            wanted = [s for s in symbols() if s in self._paths]
            if wanted:
                yield await asyncio.to_thread(self._quotes, wanted, now)
            next_at += every
            await asyncio.sleep(max(next_at - loop.time(), 0.0))

    # Inside -------------------------------------------------------------------------------------

    def _quotes(self, symbols: list[str], at: datetime) -> list[Quote]:
        return [self.quote(symbol, at) for symbol in symbols]

    def _asset(self, symbol: str) -> Asset:
        asset = self.asset(symbol)
        if asset is None:
            raise KeyError(symbol)
        return asset

    def _intraday_starts(self, asset: Asset, at: datetime, sessions: int, minutes: int) -> list[datetime]:
        step = timedelta(minutes=minutes)
        if asset.trades_around_the_clock:
            end = at.replace(second=0, microsecond=0)
            first = end - timedelta(days=sessions)
            first -= timedelta(minutes=first.minute % minutes)
            return _range(first, at, step)
        starts: list[datetime] = []
        opened = self._session_start(asset, at)
        days = [opened]
        while len(days) < sessions:
            days.insert(0, self._session_start(asset, days[0] - timedelta(seconds=1)))
        for day_open in days:
            close = day_open + timedelta(seconds=SESSION_SECONDS)
            starts += _range(day_open, min(close, at), step)
        return starts

    def _daily_starts(self, asset: Asset, at: datetime, calendar_days: int) -> list[datetime]:
        first = at - timedelta(days=calendar_days)
        if asset.trades_around_the_clock:
            midnight = first.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            return _range(midnight, at, timedelta(days=1))
        starts = []
        day = first.astimezone(NEW_YORK).date() + timedelta(days=1)
        while True:
            opened = datetime.combine(day, SESSION_OPEN, NEW_YORK).astimezone(UTC)
            if opened > at:
                break
            if day.weekday() < 5:
                starts.append(opened)
            day += timedelta(days=1)
        return starts

    def _bars(self, asset: Asset, starts: list[datetime], at: datetime) -> list[Bar]:
        path = self._paths[asset.symbol]
        bars = []
        for index, start in enumerate(starts):
            if asset.trades_around_the_clock:
                end = starts[index + 1] if index + 1 < len(starts) else at
            else:
                session_close = datetime.combine(start.astimezone(NEW_YORK).date(), SESSION_CLOSE, NEW_YORK)
                end = min(starts[index + 1] if index + 1 < len(starts) else at, session_close.astimezone(UTC), at)
            begin, finish = self._clock(asset, start), self._clock(asset, end)
            if finish <= begin:
                continue
            prices = path.prices(np.append(np.arange(begin, finish, 60.0), finish))
            bars.append(Bar(start, *(_round_price(float(p)) for p in (prices[0], prices.max(), prices.min(), prices[-1]))))
        return bars


def _previous_weekday(day: date) -> date:
    day -= timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _range(first: datetime, end: datetime, step: timedelta) -> list[datetime]:
    found = []
    current = first
    while current < end:
        found.append(current)
        current += step
    return found
