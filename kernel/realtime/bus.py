"""The bus that carries realtime messages and control signals between the processes of one deployment.

Two implementations of one small interface: :class:`InProcessBus`, the
embedded default for a single server process, and :class:`RedisBus`, Redis
pub/sub for many. A message is published once, already encoded, addressed to
a target (``u:<user id>``, ``all`` or ``control``); every process receives it
and hands it to its own local connections.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

logger = logging.getLogger("everything.bus")

# (target, payload) -> None; called on the event loop, must not block.
Deliver = Callable[[str, str], None]


class Bus(ABC):
    """Publish a payload to a target; every process's ``deliver`` receives it."""

    # Whether other processes exist to tell about this one's connections (see presence below).
    shares_presence = False

    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        """Begin receiving: ``deliver(target, payload)`` is called for every published message."""
        self._deliver = deliver

    @abstractmethod
    async def publish(self, target: str, payload: str) -> None:
        """Send ``payload`` to ``target`` in every process of the deployment, this one included."""

    async def stop(self) -> None:
        """Stop receiving and release connections."""
        self._deliver = None

    # Presence: which users have an open connection in some other process. A single
    # process knows its own connections, so the in-process bus has nothing to share.

    async def mark_online(self, user_id: int, connection_key: str, ttl: float) -> None:
        """Record that ``connection_key`` of ``user_id`` is open, for ``ttl`` seconds unless marked again."""
        return None

    async def mark_offline(self, user_id: int, connection_key: str) -> None:
        """Record that ``connection_key`` of ``user_id`` has closed."""
        return None

    async def online_elsewhere(self, user_id: int) -> bool:
        """True when another process has marked a connection of ``user_id`` online and it has not expired."""
        return False

    async def connection_open_elsewhere(self, user_id: int, connection_key: str) -> bool:
        """True when another process has marked this one connection online and it has not expired."""
        return False


class InProcessBus(Bus):
    """Delivery within this process, synchronously: nothing to cross."""

    async def publish(self, target: str, payload: str) -> None:
        if self._deliver is not None:
            self._deliver(target, payload)


class RedisBus(Bus):
    """Redis pub/sub on one channel per deployment.

    Every process subscribes to the deployment's channel and keeps what its
    own connections need. One channel keeps subscription bookkeeping out of
    the connect path; at the scale where every process receiving every
    message costs too much, per-user channels are the next step
    (docs/realtime.md).
    """

    shares_presence = True

    def __init__(self, url: str, channel: str) -> None:
        super().__init__()
        self.url = url
        self.channel = channel
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self, deliver: Deliver) -> None:
        import redis.asyncio as redis

        await super().start(deliver)
        self._client = redis.from_url(self.url, decode_responses=True)
        await self._client.ping()
        self._listener = asyncio.create_task(self._listen(), name="everything-redis-bus")
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

    async def _listen(self) -> None:
        assert self._client is not None
        while True:
            try:
                self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(self.channel)
                self._subscribed.set()
                async for message in self._pubsub.listen():
                    if message["type"] != "message":
                        continue
                    target, _, payload = message["data"].partition("\n")
                    if self._deliver is not None:
                        try:
                            self._deliver(target, payload)
                        except Exception:
                            logger.exception("delivering a bus message failed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis restarted or the network blinked: resubscribe after a pause.
                logger.warning("redis bus connection lost (%s); reconnecting", exc)
                await asyncio.sleep(1)

    async def publish(self, target: str, payload: str) -> None:
        assert self._client is not None, "the bus is not started"
        await self._client.publish(self.channel, f"{target}\n{payload}")

    # One sorted set per user: members are connection keys, scores when they expire. A process
    # that dies stops refreshing its members, and they stop counting when their score passes.

    def _presence_key(self, user_id: int) -> str:
        return f"{self.channel}:online:{user_id}"

    async def mark_online(self, user_id: int, connection_key: str, ttl: float) -> None:
        assert self._client is not None, "the bus is not started"
        key, now = self._presence_key(user_id), time.time()
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)  # what crashed processes left
            pipe.zadd(key, {connection_key: now + ttl})
            pipe.expire(key, int(ttl) + 1)
            await pipe.execute()

    async def mark_offline(self, user_id: int, connection_key: str) -> None:
        assert self._client is not None, "the bus is not started"
        await self._client.zrem(self._presence_key(user_id), connection_key)

    async def online_elsewhere(self, user_id: int) -> bool:
        assert self._client is not None, "the bus is not started"
        return await self._client.zcount(self._presence_key(user_id), time.time(), "+inf") > 0

    async def connection_open_elsewhere(self, user_id: int, connection_key: str) -> bool:
        assert self._client is not None, "the bus is not started"
        expires = await self._client.zscore(self._presence_key(user_id), connection_key)
        return expires is not None and expires > time.time()

    async def stop(self) -> None:
        await super().stop()
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, Exception):
                pass
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._client is not None:
            await self._client.aclose()


def make_bus(url: str | None, channel_prefix: str | None, database_url: str) -> Bus:
    """The bus the settings ask for. The channel defaults to one derived from the database: one deployment, one channel."""
    if url is None:
        return InProcessBus()
    channel = channel_prefix or "everything:" + hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return RedisBus(url, channel)
