"""Counting events per key in a sliding window: log-in failures, sign-ups.

:class:`FailureLimiter` counts in the process; :class:`RedisLimiter` counts
in the deployment's Redis, so that every process of a deployment shares one
count and N processes allow N guesses, not N times as many. :class:`Limits`
makes the one the bus calls for. The Redis limiters use the Redis bus's own
client and its health: while the bus's probe finds Redis away (or before the
bus starts, and after it stops) they count in the process rather than refuse
everyone, and say so in the log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

logger = logging.getLogger("everything.ratelimit")

# A log-in waits at most this long on Redis before it is counted in the process instead.
REDIS_TIMEOUT = 0.5


class _Health(Protocol):
    @property
    def state(self) -> str: ...


class SharedRedis(Protocol):
    """What the limits use of the Redis bus (kernel.realtime.bus.RedisBus), which this layer does not import."""

    @property
    def prefix(self) -> str:
        """The deployment's prefix, under which its keys live; known once the bus has started."""

    @property
    def redis(self) -> Redis | None:
        """The bus's client for commands; None unless it is started."""

    def health(self) -> _Health:
        """``state`` "ok" while the bus's probe finds Redis answering."""


class FailureLimiter:
    """Refuse a key once it has ``limit`` events within ``window`` seconds; counted in this process.

    Every method is a coroutine so that :class:`RedisLimiter`, which asks
    Redis, answers through the same interface.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            return deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
        return events

    def _wait(self, events: deque[float], now: float) -> int:
        if len(events) < self.limit:
            return 0
        return max(1, math.ceil(events[0] + self.window - now))

    async def take(self, key: str) -> int:
        """Count one event of ``key`` unless it is at its limit: 0 when counted, else the seconds to wait (nothing counted).

        Checking and counting in one step is what keeps a burst of attempts
        sent at once within the limit.
        """
        now = time.monotonic()
        wait = self._wait(self._recent(key, now), now)
        if not wait:
            self._events.setdefault(key, deque()).append(now)
        return wait

    async def reset(self, key: str) -> None:
        """Forget every event of ``key``."""
        self._events.pop(key, None)

    async def forgive(self, key: str) -> None:
        """Take back the latest event of ``key`` (an attempt that turned out to succeed, or to create nothing)."""
        events = self._events.get(key)
        if events:
            events.pop()


# One script does every operation, so that a check and its count are one step
# for every process. The window is measured by Redis's clock, which all hosts share.
# KEYS[1]: the key's sorted set; ARGV: operation ('take', 'forgive' or 'reset'), window (ms), limit, a random member suffix.
_SCRIPT = """
local key, operation = KEYS[1], ARGV[1]
if operation == 'reset' then
  redis.call('DEL', key)
  return 0
end
if operation == 'forgive' then
  redis.call('ZPOPMAX', key)
  return 0
end
local window, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(1, math.ceil((tonumber(oldest[2]) + window - now) / 1000))
end
redis.call('ZADD', key, now, now .. ':' .. ARGV[4])
redis.call('PEXPIRE', key, window)
return 0
"""


class RedisCounts:
    """The deployment's Redis as the limiters use it: the bus's client, under the bus's prefix, and the fallback.

    Limiters under one :class:`Limits` share it, so that an outage is noticed
    (and logged) once, and every limiter falls back together.
    """

    def __init__(self, bus: SharedRedis) -> None:
        self.bus = bus
        self._script: tuple[Redis, AsyncScript] | None = None
        self._local = False  # counting in the process; logged when it begins and ends

    def _fall_back(self, why: str) -> None:
        if not self._local:
            logger.warning("rate limits: %s; counting in this process until Redis answers again", why)
            self._local = True

    async def run(self, name: str, key: str, operation: str, window: float, limit: int) -> int | None:
        """Run one operation on ``key`` of the limiter ``name``; None while Redis is failing (count in the process)."""
        client = self.bus.redis
        if client is None:
            return None  # the bus is not serving (the kernel starts or stops): nothing to share counts with
        if self.bus.health().state != "ok":
            self._fall_back("the bus finds Redis away")
            return None
        if self._script is None or self._script[0] is not client:
            self._script = (client, client.register_script(_SCRIPT))
        try:
            # The bus's client waits longer (and retries) for its messages; a log-in must not.
            answer = await asyncio.wait_for(
                self._script[1](keys=[f"{self.bus.prefix}:limit:{name}:{key}"], args=[operation, int(window * 1000), limit, secrets.token_hex(4)]),
                REDIS_TIMEOUT,
            )
        except Exception as exc:  # redis raises its own errors, OSError and timeouts: each means "not now"
            # Until the bus's probe notices (within a second or so) each count tries Redis again.
            self._fall_back(f"Redis failed ({str(exc) or type(exc).__name__})")
            return None
        if self._local:
            logger.info("rate limits: counting through Redis again")
            self._local = False
        return int(answer)


class RedisLimiter(FailureLimiter):
    """A :class:`FailureLimiter` whose counts live in Redis, shared by every process of the deployment.

    While Redis fails it counts in this process (the parent class), so a
    Redis outage never refuses every log-in.
    """

    def __init__(self, counts: RedisCounts, name: str, limit: int, window: float) -> None:
        super().__init__(limit, window)
        self.counts = counts
        self.name = name

    async def _redis(self, key: str, operation: str) -> int | None:
        return await self.counts.run(self.name, key, operation, self.window, self.limit)

    async def take(self, key: str) -> int:
        answer = await self._redis(key, "take")
        return await super().take(key) if answer is None else answer

    async def reset(self, key: str) -> None:
        await super().reset(key)
        await self._redis(key, "reset")

    async def forgive(self, key: str) -> None:
        if await self._redis(key, "forgive") is None:
            await super().forgive(key)


class Limits:
    """Makes the deployment's limiters: counted in Redis when the deployment has a Redis bus, else in the process."""

    def __init__(self, bus: SharedRedis | None) -> None:
        """:param bus: the Redis bus, if the deployment has one: its Redis, its prefix (one Redis may serve several
        deployments) and its health. The limits open no connection of their own, and fall back when the bus finds Redis away."""
        self.counts = RedisCounts(bus) if bus is not None else None

    def limiter(self, name: str, limit: int, window: float) -> FailureLimiter:
        """A limiter of ``limit`` events per key within ``window`` seconds; ``name`` keeps its keys apart from other limiters'."""
        if self.counts is None:
            return FailureLimiter(limit, window)
        return RedisLimiter(self.counts, name, limit, window)
