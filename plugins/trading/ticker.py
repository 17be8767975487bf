"""Live prices over the realtime channel: ``trading.subscribe`` {symbols} → ``trading.tick`` {quotes}.

One task reads the provider's ticks for the union of every connection's
symbols. Each batch's quotes are built once per tier (the delayed quotes
are asked of the provider for the moment ``delay`` ago), and each
connection gets one ``trading.tick`` per batch holding its own symbols;
connections that follow the same symbols at the same tier share one
encoded message.
Subscriptions live with the connection, in the process that holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from kernel import ApiError, Connection, Kernel
from plugins.trading.quotes import Quotes, Tier, symbol_key

log = logging.getLogger("everything.trading")


@dataclass
class Subscription:
    connection: Connection
    tier: Tier
    symbols: set[str] = field(default_factory=set)


class Ticker:
    """The subscriptions of this process's connections, and the task that feeds them."""

    def __init__(self, kernel: Kernel, quotes: Quotes, every: float) -> None:
        self.kernel = kernel
        self.quotes = quotes
        self.every = every
        self.subscriptions: dict[str, Subscription] = {}  # by Connection.key
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # ticks sent out (tests and the benchmark read it)

    def wanted(self) -> set[str]:
        return {symbol for subscription in self.subscriptions.values() for symbol in subscription.symbols}

    async def subscribe(self, connection: Connection, symbols: list[str], limit: int) -> dict[str, Any]:
        """Add ``symbols`` to the connection's live prices; the reply names them all and the tier's delay."""
        assets = [self.quotes.asset(symbol) for symbol in symbols]
        tier = await anyio.to_thread.run_sync(self.quotes.tier, connection.user)
        subscription = self.subscriptions.get(connection.key) or Subscription(connection, tier)
        added = {asset.symbol for asset in assets}
        if len(subscription.symbols | added) > limit:
            raise ApiError(409, "too_many_symbols", f"At most {limit} symbols can be followed live at once.")
        subscription.tier = tier
        subscription.symbols |= added
        self.subscriptions[connection.key] = subscription
        self.start()
        now = datetime.now(UTC)
        current = await anyio.to_thread.run_sync(lambda: [self.quotes.quote(s, tier, now) for s in sorted(added)])
        return {
            "type": "trading.subscribed",
            "symbols": sorted(subscription.symbols),
            "delayed": tier.delayed,
            "delay_minutes": int(tier.delay.total_seconds() // 60),
            "quotes": current,
        }

    def unsubscribe(self, connection: Connection, symbols: list[str] | None) -> dict[str, Any]:
        """Drop ``symbols`` (all when None) from the connection's live prices."""
        subscription = self.subscriptions.get(connection.key)
        if subscription is not None:
            if symbols is None:
                subscription.symbols.clear()
            else:
                subscription.symbols -= {symbol_key(symbol) for symbol in symbols}
            if not subscription.symbols:
                del self.subscriptions[connection.key]
        remaining = sorted(subscription.symbols) if subscription is not None else []
        return {"type": "trading.unsubscribed", "symbols": remaining}

    def forget(self, connection: Connection) -> None:
        self.subscriptions.pop(connection.key, None)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="trading-ticker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        async for batch in self.quotes.market.ticks(self.wanted, self.every):
            if not self.subscriptions:
                continue
            try:
                await self._send(batch)
            except Exception:  # one bad batch must not stop the prices
                log.exception("trading: sending a batch of ticks failed")

    async def _send(self, batch: list[Any]) -> None:
        # Each connection's tier is asked for again every batch: a plan that changes or runs out shows at the
        # next tick, in every process (the entitlement cache answers; only this process's own change is pushed).
        current = list(self.subscriptions.values())
        tiers = await anyio.to_thread.run_sync(lambda: [self.quotes.tier(s.connection.user) for s in current])
        for subscription, tier in zip(current, tiers, strict=True):
            subscription.tier = tier
        live = self.quotes.realtime_tier
        realtime = {quote.symbol: self.quotes.quote_json(self.quotes.asset(quote.symbol), quote, live) for quote in batch}
        delayed: dict[str, dict[str, Any]] = {}
        if any(s.tier.delayed for s in self.subscriptions.values()):
            tier = self.quotes.delayed_tier
            moment = batch[0].as_of if batch else datetime.now(UTC)
            symbols = sorted({sym for s in self.subscriptions.values() if s.tier.delayed for sym in s.symbols} & set(realtime))
            delayed = await anyio.to_thread.run_sync(
                lambda: {symbol: self.quotes.quote(symbol, tier, moment) for symbol in symbols}
            )
        self.batches += 1
        # When the batch was priced, in epoch milliseconds: clients (and bench/quotes.py) measure a tick's age by it.
        at = int((batch[0].as_of if batch else datetime.now(UTC)).timestamp() * 1000)
        # Connections following the same symbols at the same tier get the same message, encoded once.
        groups: dict[tuple[bool, frozenset[str]], list[str]] = {}
        for key, subscription in list(self.subscriptions.items()):
            groups.setdefault((subscription.tier.delayed, frozenset(subscription.symbols)), []).append(key)
        for (is_delayed, followed), keys in groups.items():
            source = delayed if is_delayed else realtime
            quotes = [source[symbol] for symbol in sorted(followed) if symbol in source]
            if quotes:
                await self.kernel.realtime.send_to_connections(keys, {"type": "trading.tick", "at": at, "quotes": quotes})
                await asyncio.sleep(0)  # a long round of sends must not hold the event loop for the whole second
