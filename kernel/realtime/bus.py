"""The bus that carries realtime messages and control signals between the processes of one deployment.

The hub delivers to this process's own connections directly; the bus only
carries what another process must deliver. Two implementations of one
small interface: :class:`InProcessBus`, the embedded default for a single
server process (nothing to carry), and :class:`RedisBus`, Redis pub/sub for
many, on these channels under the deployment's prefix:

- ``<prefix>:u:<user id>``: messages for a user; a process subscribes while
  it holds a connection of that user, so only those processes receive them;
- ``<prefix>:p:<process key>``: messages addressed to connections, which
  carry their process in their key (``<process key>.<n>``);
- ``<prefix>:all`` and ``<prefix>:control``: every process.

Each published message is ``<origin process>\\n<target>\\n<payload>``; a
process ignores what it published itself, having delivered it already.
docs/realtime.md has the numbers behind the choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from kernel.settings import BusSettings, Settings
    from kernel.storage.database import Database

logger = logging.getLogger("everything.bus")

# (target, payload) -> None; called on the event loop, must not block.
Deliver = Callable[[str, str], None]

# The origin of messages published by a process that serves no sockets (the CLI).
OUTSIDE = "outside"
# How often the probe asks Redis whether it answers, at most.
PROBE_SECONDS = 1.0
# How long a new connection waits for its user's channel before it is greeted anyway.
WATCH_WAIT_SECONDS = 2.0
# Between two warnings about messages dropped while Redis is unreachable.
DROP_LOG_SECONDS = 10.0


@dataclass(frozen=True)
class BusHealth:
    """What /readyz says of the bus: ``state`` for its checks, ``ready`` for its status."""

    state: str  # "in_process", "ok", "unreachable" (for less than down_after_seconds) or "down"
    ready: bool


class Bus:
    """Carry messages to the other processes of the deployment; each process's ``deliver`` receives them."""

    # Whether other processes exist to tell about this one's connections (see presence below).
    shares_presence = False

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        self.process_key = ""
        # Called (on the event loop) when Redis may have lost what this process stored there, presence
        # above all: on subscribing again after losing the connection, and when Redis answers again.
        self.on_reconnected: Callable[[], None] | None = None

    async def start(self, deliver: Deliver, process_key: str) -> None:
        """Begin receiving: ``deliver(target, payload)`` is called for every message another process published."""
        self._deliver = deliver
        self.process_key = process_key

    async def publish(self, target: str, payload: str) -> None:
        """Send ``payload`` to ``target`` in the other processes of the deployment (this one delivers its own)."""
        return None

    async def stop(self) -> None:
        """Stop receiving and release connections."""
        self._deliver = None

    def watch_user(self, user_id: int) -> None:
        """This process now holds a connection of ``user_id``: receive the messages others publish for them."""
        return None

    def unwatch_user(self, user_id: int) -> None:
        """This process holds no connection of ``user_id`` any more."""
        return None

    async def until_watching(self, user_id: int) -> None:
        """Return once messages for ``user_id`` reach this process (or the bus cannot tell soon)."""
        return None

    def health(self) -> BusHealth:
        """Whether the bus can carry messages now, for /readyz."""
        return BusHealth("in_process", True)

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
    """One process: the hub delivers everything itself, and there is nothing to cross."""


def user_of(target: str) -> str:
    """The user id a ``u:<id>[!<excluded key>]`` target names."""
    return target[2:].partition("!")[0]


def process_of(target: str) -> str:
    """The process holding the connections a ``c:<key>[,<key>…]`` target (all of one process), or one connection key, names."""
    return target.removeprefix("c:").partition(".")[0]


class RedisBus(Bus):
    """Redis pub/sub: per-user channels, one channel per process, and ``all`` and ``control``.

    One task reads the subscription connection; another (the only one that
    subscribes and unsubscribes) brings the subscribed user channels to what
    this process's connections want, in batches, re-reading what is wanted
    after each batch, so that a user who leaves and comes back while a
    command is under way ends up subscribed. When Redis goes away, messages
    for other processes are logged and dropped, and the bus reconnects and
    subscribes again by itself. A probe on its own connection tells /readyz
    whether Redis answers, so a busy publishing connection is never taken for
    an outage.
    """

    shares_presence = True

    def __init__(self, url: str, prefix: str | None, db: Database | None, down_after: float = 10.0) -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix or ""
        self._explicit_prefix = prefix
        self._db = db
        self.down_after = down_after
        self._client: Redis | None = None
        self._pubsub_client: Redis | None = None
        self._probe_client: Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._users: set[int] = set()  # the users this process holds connections of
        self._subscribed: set[str] = set()  # the channels surely subscribed on the current subscription connection
        self._changed = asyncio.Event()
        self._settled = asyncio.Condition()
        self._session_started = 0.0
        self._failing_since: float | None = None  # monotonic; None while the probe's last answer came
        self._dropped = 0
        self._drop_logged = 0.0

    @property
    def redis(self) -> Redis | None:
        """The client for commands (the rate limits count through it): None unless the bus is started.

        Its keys belong under :attr:`prefix`, the deployment's, which is known from start on.
        """
        return self._client

    def _user_channel(self, user_id: int | str) -> str:
        return f"{self.prefix}:u:{user_id}"

    def _fixed_channels(self) -> set[str]:
        return {f"{self.prefix}:p:{self.process_key}", f"{self.prefix}:all", f"{self.prefix}:control"}

    def _wanted(self) -> set[str]:
        return self._fixed_channels() | {self._user_channel(user_id) for user_id in self._users}

    # Lifecycle ----------------------------------------------------------------------

    async def start(self, deliver: Deliver, process_key: str) -> None:
        await super().start(deliver, process_key)
        if self._explicit_prefix is None:
            assert self._db is not None, "a RedisBus without a channel prefix needs the database that names the deployment"
            self.prefix = await anyio.to_thread.run_sync(deployment_prefix, self._db)
        self._client = _client(self.url, timeout=2.0, retries=1)
        self._pubsub_client = _client(self.url, timeout=2.0, retries=0, for_pubsub=True)
        self._probe_client = _client(self.url, timeout=min(1.0, self.down_after / 2), retries=0)
        self._tasks = [
            asyncio.create_task(self._run(), name="everything-bus"),
            asyncio.create_task(self._probe(), name="everything-bus-probe"),
        ]
        # Wait briefly for the first subscription, so that what others publish right after start arrives;
        # a Redis that is down must not keep the server from serving its own sockets.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._until(lambda: self._fixed_channels() <= self._subscribed or self._failing_since is not None), timeout=5
            )

    async def stop(self) -> None:
        await super().stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        clients = (self._client, self._pubsub_client, self._probe_client)
        # Forgotten, not only closed: a closed redis-py client would quietly open a new connection, never closed.
        self._client = self._pubsub_client = self._probe_client = None
        for client in clients:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    # Receiving ----------------------------------------------------------------------

    async def _run(self) -> None:
        """One subscription session after another: each ends when its connection fails, the next subscribes afresh."""
        pause = 0.2
        first = True
        while True:
            assert self._pubsub_client is not None
            pubsub = self._pubsub_client.pubsub(ignore_subscribe_messages=True)
            self._session_started = time.monotonic()
            tasks: list[asyncio.Task[None]] = []
            try:
                wanted = self._wanted()
                await pubsub.subscribe(*wanted)
                await self._now_subscribed(wanted)
                if not first:
                    self._reconnected()  # a restart may have been quicker than the probe could notice
                first = False
                pause = 0.2
                tasks = [
                    asyncio.create_task(self._read(pubsub)),
                    asyncio.create_task(self._sync(pubsub)),
                    asyncio.create_task(self._stale()),
                ]
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # what ended the session, if it raised
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "the redis bus lost its subscription connection (%s); subscribing again", exc or type(exc).__name__
                )
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                await self._now_subscribed(set())
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _read(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            origin, _, rest = message["data"].partition("\n")
            if origin == self.process_key:
                continue  # this process delivered it when it published it
            target, _, payload = rest.partition("\n")
            if self._deliver is not None:
                try:
                    self._deliver(target, payload)
                except Exception:
                    logger.exception("delivering a bus message failed")

    async def _sync(self, pubsub: PubSub) -> None:
        """Bring the user channels to what is wanted, a batch at a time; the only task that (un)subscribes."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            wanted = self._wanted()
            add, drop = wanted - self._subscribed, self._subscribed - wanted
            # _subscribed only ever names channels surely subscribed: a channel leaves it before its
            # UNSUBSCRIBE goes out and joins it once its SUBSCRIBE has, so until_watching never
            # trusts one that is on its way out (the next round subscribes it again if wanted).
            if drop:
                await self._now_subscribed(self._subscribed - drop)
                await pubsub.unsubscribe(*drop)
            if add:
                await pubsub.subscribe(*add)
                await self._now_subscribed(self._subscribed | add)

    def _reconnected(self) -> None:
        if self.on_reconnected is not None:
            try:
                self.on_reconnected()
            except Exception:
                logger.exception("what the bus's reconnection starts failed")

    async def _stale(self) -> None:
        """End the session when the probe lost Redis after it began: its connection may be dead without knowing it."""
        while True:
            await asyncio.sleep(PROBE_SECONDS)
            failing = self._failing_since
            if failing is not None and failing > self._session_started:
                await self._until(lambda: self._failing_since is None)
                return

    async def _now_subscribed(self, channels: set[str]) -> None:
        async with self._settled:
            self._subscribed = set(channels)
            self._settled.notify_all()

    async def _until(self, condition: Callable[[], bool]) -> None:
        async with self._settled:
            await self._settled.wait_for(condition)

    def watch_user(self, user_id: int) -> None:
        self._users.add(user_id)
        self._changed.set()

    def unwatch_user(self, user_id: int) -> None:
        self._users.discard(user_id)
        self._changed.set()

    async def until_watching(self, user_id: int) -> None:
        if self._failing_since is not None:
            return  # Redis is away: greet the socket now, its own process's messages reach it anyway
        channel = self._user_channel(user_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._until(lambda: channel in self._subscribed or user_id not in self._users), WATCH_WAIT_SECONDS
            )

    # Health -------------------------------------------------------------------------

    async def _probe(self) -> None:
        assert self._probe_client is not None
        every = min(PROBE_SECONDS, self.down_after / 4)
        while True:
            try:
                await self._probe_client.ping()
                if self._failing_since is not None:
                    logger.warning(
                        "redis answers again after %.1f s; %d messages for other processes were dropped meanwhile",
                        time.monotonic() - self._failing_since,
                        self._dropped,
                    )
                    self._dropped = 0
                    async with self._settled:
                        self._failing_since = None
                        self._settled.notify_all()
                    self._reconnected()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._failing_since is None:
                    logger.warning(
                        "redis does not answer (%s): messages for other processes are dropped until it does",
                        exc or type(exc).__name__,
                    )
                    async with self._settled:
                        self._failing_since = time.monotonic()
                        self._settled.notify_all()
            await asyncio.sleep(every)

    def health(self) -> BusHealth:
        if self._failing_since is None:
            return BusHealth("ok", True)
        if time.monotonic() - self._failing_since < self.down_after:
            return BusHealth("unreachable", True)
        return BusHealth("down", False)

    # Publishing ---------------------------------------------------------------------

    def channel_for(self, target: str) -> str:
        """The channel that reaches the processes ``target`` concerns."""
        if target.startswith("u:"):
            return self._user_channel(user_of(target))
        if target.startswith("c:"):
            return f"{self.prefix}:p:{process_of(target)}"
        return f"{self.prefix}:{target}"  # all, control

    async def publish(self, target: str, payload: str) -> None:
        if self._client is None:
            # Stopped (or not yet started): work still finishing at shut-down has nowhere to send it.
            logger.warning("the bus is not running: dropped a message for %s", target)
            return
        if self._failing_since is not None:
            # Known to be away: drop at once rather than make the sender wait for a timeout each time.
            self._dropped += 1
            now = time.monotonic()
            if now - self._drop_logged > DROP_LOG_SECONDS:
                self._drop_logged = now
                logger.error("redis is unreachable: dropped a message for %s (and any others until it answers)", target)
            return
        await self._client.publish(self.channel_for(target), f"{self.process_key}\n{target}\n{payload}")

    # One sorted set per user: members are connection keys, scores when they expire. A process
    # that dies stops refreshing its members, and they stop counting when their score passes.

    def _presence_key(self, user_id: int) -> str:
        return f"{self.prefix}:online:{user_id}"

    async def mark_online(self, user_id: int, connection_key: str, ttl: float) -> None:
        assert self._client is not None, "the bus is not started"
        if self._failing_since is not None:
            return  # Redis is away (logged once): the heartbeat after it returns marks the socket again
        key, now = self._presence_key(user_id), time.time()
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)  # what crashed processes left
            pipe.zadd(key, {connection_key: now + ttl})
            pipe.expire(key, int(ttl) + 1)
            await pipe.execute()

    async def mark_offline(self, user_id: int, connection_key: str) -> None:
        assert self._client is not None, "the bus is not started"
        if self._failing_since is not None:
            return  # the mark expires by itself within three heartbeats
        await self._client.zrem(self._presence_key(user_id), connection_key)

    async def online_elsewhere(self, user_id: int) -> bool:
        assert self._client is not None, "the bus is not started"
        return await self._client.zcount(self._presence_key(user_id), time.time(), "+inf") > 0

    async def connection_open_elsewhere(self, user_id: int, connection_key: str) -> bool:
        assert self._client is not None, "the bus is not started"
        expires = await self._client.zscore(self._presence_key(user_id), connection_key)
        return expires is not None and expires > time.time()


# Connections one process opens to Redis for publishing and presence at most; a burst of work (a
# thousand sockets marked online at once) queues for them instead of failing with "Too many connections".
POOL_SIZE = 16


def _client(url: str, *, timeout: float, retries: int, for_pubsub: bool = False) -> Redis:
    import redis.asyncio as redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=timeout,  # waiting for a free connection
        decode_responses=True,
        socket_connect_timeout=timeout,
        # The subscription connection waits for messages indefinitely; the probe watches Redis for it.
        socket_timeout=None if for_pubsub else timeout,
        retry=Retry(NoBackoff(), retries),
    )
    return redis.Redis.from_pool(pool)  # closing the client closes its pool


def deployment_prefix(db: Database) -> str:
    """The channel prefix of the deployment ``db`` belongs to: named by the id stored in it (blocking)."""
    from kernel.deployment import deployment_id

    return f"everything:{deployment_id(db)}"


def make_bus(settings: BusSettings, db: Database) -> Bus:
    """The bus the settings ask for: in-process without ``bus.url``, Redis with it."""
    if settings.url is None:
        return InProcessBus()
    return RedisBus(settings.url, settings.channel_prefix, db, settings.down_after_seconds)


async def publish_control_from_outside(settings: Settings, message: dict[str, Any]) -> bool:
    """Tell every server process of the deployment about a change made by a process that serves nothing (the CLI).

    The message reaches each server's ``hub.control_listeners``, as
    :meth:`Hub.publish_control` does from inside. Returns False when nothing
    was told: without a Redis bus there is one process at most, which reads
    the change at its next refresh; when Redis does not answer (logged), the
    servers pick the change up at their periodic refresh too.
    """
    if settings.bus.url is None:
        return False
    from kernel.storage.database import Database

    prefix = settings.bus.channel_prefix
    if prefix is None:
        db = Database(settings.database_url)
        try:
            prefix = await anyio.to_thread.run_sync(deployment_prefix, db)
        finally:
            db.dispose()
    client = _client(settings.bus.url, timeout=2.0, retries=1)
    try:
        payload = json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str)
        await client.publish(f"{prefix}:control", f"{OUTSIDE}\ncontrol\n{payload}")
        return True
    except Exception as exc:
        logger.warning("could not tell the servers over redis (%s); they pick the change up at their next refresh", exc)
        return False
    finally:
        await client.aclose()
