"""Counting events per key in a sliding window: log-in failures, sign-ups.

:class:`FailureLimiter` counts in the process; :class:`RedisLimiter` counts
in the deployment's Redis, so that every process of a deployment shares one
count and N processes allow N guesses, not N times as many. :class:`Limits`
makes the one the settings call for. When Redis fails, a Redis limiter
counts in the process for a short while rather than refuse everyone, and
says so in the log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

logger = logging.getLogger("everything.ratelimit")

# How long to count in the process after Redis failed, before trying it again.
FALLBACK_SECONDS = 30.0
# A log-in waits at most this long on Redis before it is counted in the process instead.
REDIS_TIMEOUT = 0.5


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

    async def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 when it may now."""
        now = time.monotonic()
        return self._wait(self._recent(key, now), now)

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

    async def fail(self, key: str) -> None:
        """Count one event of ``key``, whatever its count."""
        self._events.setdefault(key, deque()).append(time.monotonic())

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
# KEYS[1]: the key's sorted set; ARGV: operation, window (ms), limit, a random member suffix.
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
if operation ~= 'fail' and redis.call('ZCARD', key) >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(1, math.ceil((tonumber(oldest[2]) + window - now) / 1000))
end
if operation == 'check' then
  return 0
end
redis.call('ZADD', key, now, now .. ':' .. ARGV[4])
redis.call('PEXPIRE', key, window)
return 0
"""


class RedisCounts:
    """The deployment's Redis as the limiters use it: one client per event loop, and the fallback after a failure.

    Limiters under one :class:`Limits` share it, so that an outage is noticed
    (and logged) once, and every limiter falls back together.
    """

    def __init__(self, url: str, prefix: Callable[[], str]) -> None:
        self.url = url
        self.prefix = prefix
        self._client: tuple[asyncio.AbstractEventLoop, Redis, AsyncScript] | None = None
        self._local_until = 0.0

    def _script(self) -> AsyncScript:
        import redis.asyncio as redis

        loop = asyncio.get_running_loop()
        if self._client is None or self._client[0] is not loop:
            # A client's connections belong to the loop that opened them: a kernel served again on a new loop gets a new one.
            client = redis.from_url(self.url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
            self._client = (loop, client, client.register_script(_SCRIPT))
        return self._client[2]

    async def run(self, name: str, key: str, operation: str, window: float, limit: int) -> int | None:
        """Run one operation on ``key`` of the limiter ``name``; None while Redis is failing (count in the process)."""
        if time.monotonic() < self._local_until:
            return None
        try:
            script = self._script()
            answer = await script(keys=[f"{self.prefix()}:limit:{name}:{key}"], args=[operation, int(window * 1000), limit, secrets.token_hex(4)])
        except Exception as exc:  # redis raises its own errors, OSError and timeouts: each means "not now"
            logger.warning("rate limits: Redis failed (%s); counting in this process for %g s", exc, FALLBACK_SECONDS)
            self._local_until = time.monotonic() + FALLBACK_SECONDS
            return None
        if self._local_until:
            logger.info("rate limits: counting through Redis again")
            self._local_until = 0.0
        return int(answer)

    async def aclose(self) -> None:
        """Close the client, if one was opened on the running loop."""
        if self._client is not None and self._client[0] is asyncio.get_running_loop():
            await self._client[1].aclose()
        self._client = None


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

    async def retry_after(self, key: str) -> int:
        answer = await self._redis(key, "check")
        return await super().retry_after(key) if answer is None else answer

    async def take(self, key: str) -> int:
        answer = await self._redis(key, "take")
        return await super().take(key) if answer is None else answer

    async def fail(self, key: str) -> None:
        if await self._redis(key, "fail") is None:
            await super().fail(key)

    async def reset(self, key: str) -> None:
        await super().reset(key)
        await self._redis(key, "reset")

    async def forgive(self, key: str) -> None:
        if await self._redis(key, "forgive") is None:
            await super().forgive(key)


class Limits:
    """Makes the deployment's limiters: counted in Redis when a Redis bus is configured, else in the process."""

    def __init__(self, redis_url: str | None, prefix: Callable[[], str]) -> None:
        """:param prefix: gives the deployment's bus prefix, under which its counts are kept (one Redis may serve
        several deployments); asked at each count, since the bus learns it only when it starts."""
        self.counts = RedisCounts(redis_url, prefix) if redis_url else None

    def limiter(self, name: str, limit: int, window: float) -> FailureLimiter:
        """A limiter of ``limit`` events per key within ``window`` seconds; ``name`` keeps its keys apart from other limiters'."""
        if self.counts is None:
            return FailureLimiter(limit, window)
        return RedisLimiter(self.counts, name, limit, window)

    async def aclose(self) -> None:
        """Release the Redis client, if any."""
        if self.counts is not None:
            await self.counts.aclose()

