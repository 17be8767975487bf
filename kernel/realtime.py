"""The realtime channel: one websocket per tab at ``/ws``, JSON messages routed to plugins.

A client message is ``{"type": "<plugin>.<name>", "id": ..., ...}``; the
kernel hands it to the handler that plugin registered for the type. Server
messages reach every open connection of a user through the bus, so a user
connected to another process receives them too. Each connection has a
bounded send queue drained by its own task: a slow client fills only its own
queue, and is disconnected (close code 4408) rather than let it hold up
anyone else. The protocol is documented in docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import itertools
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.websockets import WebSocket, WebSocketDisconnect

from kernel.errors import ApiError
from kernel.identity import Credential, User

if TYPE_CHECKING:
    from kernel.app import Kernel
    from kernel.bus import Bus
    from kernel.plugins import PluginRecord

logger = logging.getLogger("everything.realtime")

Handler = Callable[["Connection", dict[str, Any]], Awaitable[dict[str, Any] | None] | dict[str, Any] | None]

# Close codes (4000-4999 are the application's own).
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008  # the abuse went on: too many bad messages
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_SLOW_CONSUMER = 4408

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_connection_ids = itertools.count(1)

BAD_MESSAGE_WINDOW = 60.0


def encode(message: dict[str, Any]) -> str:
    return _ENCODER.encode(message)


class Connection:
    """One open websocket of a signed-in user, as handlers see it."""

    def __init__(self, hub: Hub, websocket: WebSocket, user: User, credential: Credential | None = None) -> None:
        settings = hub.settings
        self.id = next(_connection_ids)
        # Unique across the deployment's processes: what kernel.realtime.send_to_connection takes.
        self.key = f"{hub.process_key}.{self.id}"
        self.hub = hub
        self.kernel = hub.kernel
        self.websocket = websocket
        self.user = user
        # What authenticated the socket; re-checked every heartbeat, so that revoking it closes the socket.
        self.credential = credential
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=settings.send_queue)
        self.closed = False
        self._tokens = float(settings.burst)
        self._refilled = time.monotonic()
        self._bad: deque[float] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._close_with = (CLOSE_GOING_AWAY, "")
        self._flushing = False

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message for this connection alone; never blocks."""
        self.send_text(encode(message))

    def send_text(self, text: str) -> None:
        """Queue an already encoded message; a full queue means the client is too slow, and it is disconnected."""
        if self.closed:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            logger.warning("disconnecting a slow realtime client of @%s: %d messages waiting", self.user.username, self.queue.qsize())
            self.close(CLOSE_SLOW_CONSUMER, "too slow: messages were piling up")

    def close(self, code: int, reason: str = "", *, flush: bool = False) -> None:
        """Close the socket with ``code``: after what is queued when ``flush``, else at once, dropping it."""
        if self.closed:
            return
        self.closed = True
        if flush and self._writer is not None:
            try:
                self.queue.put_nowait(None)  # the writer closes once it gets here
                self._close_with = (code, reason)
                self._flushing = True
                return
            except asyncio.QueueFull:
                pass
        if self._writer is not None:
            self._writer.cancel()
        self.hub.spawn(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            # A client that reads nothing may never take the close frame either.
            await asyncio.wait_for(self.websocket.close(code, reason), timeout=5)
        except Exception:
            pass
        self.hub.remove(self)

    async def _write(self) -> None:
        try:
            while True:
                text = await self.queue.get()
                if text is None:
                    await self._close(*self._close_with)
                    return
                await self.websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closed = True

    async def finish(self) -> None:
        """Once the client is gone or being closed: let a flushing close finish, then leave the hub."""
        if self._flushing and self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), timeout=5)
        self.hub.remove(self)

    def take_token(self) -> bool:
        """The per-connection rate limit: a token bucket of ``messages_per_second`` and ``burst``."""
        settings = self.hub.settings
        now = time.monotonic()
        self._tokens = min(settings.burst, self._tokens + (now - self._refilled) * settings.messages_per_second)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def strike(self) -> bool:
        """Count one bad message; True when too many came in the last minute."""
        now = time.monotonic()
        self._bad.append(now)
        while self._bad and self._bad[0] < now - BAD_MESSAGE_WINDOW:
            self._bad.popleft()
        return len(self._bad) > self.hub.settings.max_bad_messages


class Hub:
    """This process's open connections, the plugins' handlers, and delivery through the bus."""

    def __init__(self, kernel: Kernel, bus: Bus) -> None:
        self.kernel = kernel
        self.settings = kernel.settings.realtime
        self.bus = bus
        self.by_user: dict[int, set[Connection]] = {}
        self.by_key: dict[str, Connection] = {}
        self.process_key = secrets.token_hex(4)
        self.handlers: dict[str, tuple[PluginRecord, Handler]] = {}
        self.control_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._heartbeat: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    # Lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        await self.bus.start(self._deliver)
        self._heartbeat = asyncio.create_task(self._beat(), name="everything-heartbeat")

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for connection in [c for conns in self.by_user.values() for c in conns]:
            connection.close(CLOSE_GOING_AWAY, "the server is restarting")
        await asyncio.sleep(0)
        await self.bus.stop()

    async def _beat(self) -> None:
        text = encode({"type": "kernel.heartbeat"})
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            connections = [connection for group in list(self.by_user.values()) for connection in group]
            for connection in connections:
                connection.send_text(text)
                if self.bus.shares_presence:
                    self.spawn(self._mark(connection, online=True))
            try:
                await self._close_revoked(connections)
            except Exception:
                logger.exception("checking the credentials of open sockets failed")

    async def _close_revoked(self, connections: list[Connection]) -> None:
        """Close (4401) the sockets whose session ended or whose token was deleted since they opened."""
        held = [connection for connection in connections if connection.credential is not None]
        session_ids = {c.credential.id for c in held if c.credential.kind == "session"}  # type: ignore[union-attr]
        token_ids = {c.credential.id for c in held if c.credential.kind == "token"}  # type: ignore[union-attr]
        if not held:
            return
        live_sessions, live_tokens = await anyio.to_thread.run_sync(self.kernel.identity.live_credentials, session_ids, token_ids)
        for connection in held:
            credential = connection.credential
            assert credential is not None
            if credential.id not in (live_sessions if credential.kind == "session" else live_tokens):
                connection.send({"type": "error", "ref": None, "code": "unauthorized", "message": "Your session ended; sign in again."})
                connection.close(CLOSE_UNAUTHORIZED, "the credential was revoked", flush=True)

    def spawn(self, work: Awaitable[None]) -> None:
        """Run ``work`` in the background, holding on to it until it ends (the loop keeps only weak references)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def register(self, record: PluginRecord, handlers: dict[str, Handler]) -> None:
        """Take a plugin's handlers; each type must be ``<plugin>.<name>`` (ValueError otherwise)."""
        for message_type, handler in handlers.items():
            if not isinstance(message_type, str) or not message_type.startswith(f"{record.name}.") or len(message_type) > 64:
                raise ValueError(f"realtime type '{message_type}' must start with '{record.name}.'")
            if not callable(handler):
                raise ValueError(f"realtime handler for '{message_type}' is not callable")
        for message_type, handler in handlers.items():
            self.handlers[message_type] = (record, handler)

    # Sending ------------------------------------------------------------------------

    async def send_to_user(self, user: User | int, message: dict[str, Any], *, except_connection: str | None = None) -> None:
        """Deliver ``message`` to every open connection of ``user``, in whichever process it is.

        ``except_connection`` (a :attr:`Connection.key`) leaves that one
        connection out: the tab that caused the message already knows.
        Realtime messages are hints next to what the database holds: when the
        bus cannot take one, it is logged and dropped, and the caller's
        committed work does not fail for it.
        """
        user_id = user if isinstance(user, int) else user.id
        target = f"u:{user_id}" if except_connection is None else f"u:{user_id}!{except_connection}"
        await self._publish(target, encode(message))

    async def send_to_connection(self, key: str, message: dict[str, Any]) -> None:
        """Deliver ``message`` to the one connection named by ``key`` (a :attr:`Connection.key`), in whichever process holds it.

        Nothing happens when that connection has closed. Like every realtime
        message, it is dropped and logged when the bus fails.
        """
        await self._publish(f"c:{key}", encode(message))

    async def send_to_connections(self, keys: Iterable[str], message: dict[str, Any]) -> None:
        """Deliver the same ``message`` to each connection in ``keys``, encoding it once (a room's state to its members)."""
        payload = encode(message)
        for key in keys:
            await self._publish(f"c:{key}", payload)

    async def broadcast(self, message: dict[str, Any]) -> None:
        """Deliver ``message`` to every open connection of the deployment (dropped, logged, if the bus fails)."""
        await self._publish("all", encode(message))

    async def publish_control(self, message: dict[str, Any]) -> None:
        """Tell every process of the deployment (this one included) about a change, such as a switch.

        Should the bus fail, the others still learn of it by the periodic refresh.
        """
        await self._publish("control", encode(message))

    async def _publish(self, target: str, payload: str) -> None:
        try:
            await self.bus.publish(target, payload)
        except Exception as exc:
            logger.error("the bus dropped a message for %s: %s", target, exc)

    def is_online(self, user: User | int) -> bool:
        """True when the user has an open connection to this process."""
        return bool(self.by_user.get(user if isinstance(user, int) else user.id))

    async def is_online_anywhere(self, user: User | int) -> bool:
        """True when the user has an open connection to any process of the deployment.

        This process answers from memory; others through the bus, whose
        presence records a crashed process's connections only until their
        time runs out (three heartbeats).
        """
        user_id = user if isinstance(user, int) else user.id
        if self.is_online(user_id):
            return True
        try:
            return await self.bus.online_elsewhere(user_id)
        except Exception as exc:
            logger.error("the bus could not say whether user %s is online: %s", user_id, exc)
            return False

    async def is_connection_open(self, user: User | int, key: str) -> bool:
        """True when the connection named ``key`` (a :attr:`Connection.key` of ``user``) is open in some process."""
        if key in self.by_key:
            return True
        try:
            return await self.bus.connection_open_elsewhere(user if isinstance(user, int) else user.id, key)
        except Exception as exc:
            logger.error("the bus could not say whether a connection is open: %s", exc)
            return True  # unknown: never treat a party as gone on the bus's say-so

    @property
    def presence_ttl(self) -> float:
        return 3 * self.settings.heartbeat_seconds

    async def _mark(self, connection: Connection, online: bool) -> None:
        try:
            if online and connection.closed:
                return  # it closed before this ran: marking it would outlive its removal
            if online:
                await self.bus.mark_online(connection.user.id, connection.key, self.presence_ttl)
            else:
                await self.bus.mark_offline(connection.user.id, connection.key)
        except Exception as exc:
            logger.error("the bus could not record presence: %s", exc)

    def _deliver(self, target: str, payload: str) -> None:
        if target.startswith("u:"):
            user_id, _, excluded = target[2:].partition("!")
            try:
                connections = self.by_user.get(int(user_id))
            except ValueError:
                return
            for connection in list(connections or ()):
                if connection.key != excluded:
                    connection.send_text(payload)
        elif target.startswith("c:"):
            connection = self.by_key.get(target[2:])
            if connection is not None:
                connection.send_text(payload)
        elif target == "all":
            for connections in list(self.by_user.values()):
                for connection in list(connections):
                    connection.send_text(payload)
        elif target == "control":
            message = json.loads(payload)
            for listener in self.control_listeners:
                try:
                    listener(message)
                except Exception:
                    logger.exception("a control listener failed on %s", message.get("type"))

    # Connections -------------------------------------------------------------------

    def add(self, connection: Connection) -> None:
        self.by_user.setdefault(connection.user.id, set()).add(connection)
        self.by_key[connection.key] = connection
        connection._writer = asyncio.create_task(connection._write())
        if self.bus.shares_presence:
            self.spawn(self._mark(connection, online=True))

    def remove(self, connection: Connection) -> None:
        connections = self.by_user.get(connection.user.id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self.by_user[connection.user.id]
        if self.by_key.pop(connection.key, None) is not None and self.bus.shares_presence:
            self.spawn(self._mark(connection, online=False))
        connection.closed = True
        if connection._writer is not None and not connection._writer.done():
            connection._writer.cancel()

    # Receiving -----------------------------------------------------------------------

    async def dispatch(self, connection: Connection, text: str) -> None:
        """Handle one client message; every refusal is answered with an ``error`` naming the message's id."""
        ref: Any = None
        try:
            if len(text) > self.settings.max_message_bytes or len(text.encode()) > self.settings.max_message_bytes:
                raise ApiError(413, "message_too_large", f"Messages may be at most {self.settings.max_message_bytes} bytes.")
            try:
                message = json.loads(text)
            except (ValueError, RecursionError):
                raise ApiError(400, "invalid_json", "The message is not valid JSON.") from None
            if not isinstance(message, dict):
                raise ApiError(400, "invalid_message", "A message is a JSON object with a type.")
            ref = message.get("id")
            if ref is not None and not (isinstance(ref, (int, str)) and not isinstance(ref, bool) and len(str(ref)) <= 64):
                ref = None
                raise ApiError(400, "invalid_message", "id: a string or number of at most 64 characters.")
            message_type = message.get("type")
            if not isinstance(message_type, str) or not message_type:
                raise ApiError(400, "invalid_message", "type: required, a string such as 'calls.invite'.")
            if not connection.take_token():
                raise ApiError(429, "rate_limited", "Too many messages: slow down.")
            reply = await self._handle(connection, message_type, message)
            if reply is not None:
                connection.send({"type": "reply", **reply, "ref": ref})
        except ApiError as error:
            connection.send({"type": "error", "ref": ref, "code": error.code, "message": error.message, **error.extra})
            if connection.strike():
                connection.send({"type": "error", "ref": None, "code": "too_many_errors", "message": "Too many bad messages; closing."})
                connection.close(CLOSE_POLICY, "too many bad messages", flush=True)

    async def _handle(self, connection: Connection, message_type: str, message: dict[str, Any]) -> dict[str, Any] | None:
        if message_type == "kernel.ping":
            return {"type": "kernel.pong"}
        entry = self.handlers.get(message_type)
        plugin = message_type.split(".", 1)[0]
        record = entry[0] if entry else self.kernel.plugins.records.get(plugin)
        if record is not None and record.booted and not record.running:
            raise ApiError(403, "plugin_disabled", f"The {record.title} feature is switched off on this deployment.")
        if entry is None or not entry[0].running:  # a plugin that failed keeps no handlers
            raise ApiError(400, "unknown_type", f"No handler for messages of type '{message_type}'.")
        record, handler = entry
        try:
            result = handler(connection, message)
            if inspect.isawaitable(result):
                result = await result
        except ApiError:
            raise
        except Exception:
            logger.exception("plugin %s raised while handling a %s message", record.name, message_type)
            raise ApiError(500, "internal_error", "Something went wrong on our side. It has been logged.") from None
        if result is not None and not isinstance(result, dict):
            logger.error("plugin %s: the %s handler returned %r, not a dict", record.name, message_type, type(result))
            return None
        return result


def realtime_feature_required(feature: str) -> Callable[[Handler], Handler]:
    """Decorate a realtime handler: the sender must hold ``feature``, else an ``error`` with code ``premium_required``."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(connection: Connection, message: dict[str, Any]) -> dict[str, Any] | None:
            entitlements = connection.kernel.entitlements
            if not entitlements.is_cached(connection.user.id):
                await anyio.to_thread.run_sync(entitlements.held_plans, connection.user.id)
            entitlements.require(connection.user, feature)
            result = handler(connection, message)
            return await result if inspect.isawaitable(result) else result

        return checked

    return decorate


def _origin_allowed(websocket: WebSocket, kernel: Kernel) -> bool:
    """A cookie-authenticated socket must come from a page of this site: no cross-site socket hijacking."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser
    base = kernel.settings.server.base_url
    if base and origin.rstrip("/") == base.rstrip("/"):
        return True
    host = websocket.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def websocket_endpoint(websocket: WebSocket) -> None:
    """``/ws``: authenticate, greet, then read messages until the client goes."""
    from kernel.app import get_kernel

    kernel = get_kernel(websocket)
    hub = kernel.realtime
    user: User | None = websocket.scope.get("user")
    credential = websocket.scope.get("credential")
    await websocket.accept()
    if user is None:
        await websocket.send_text(encode({"type": "error", "ref": None, "code": "unauthorized", "message": "Sign in, or send a bearer token."}))
        await websocket.close(CLOSE_UNAUTHORIZED, "unauthorized")
        return
    if credential is not None and credential.kind == "session" and not _origin_allowed(websocket, kernel):
        await websocket.send_text(encode({"type": "error", "ref": None, "code": "forbidden_origin", "message": "Connect from this site's pages."}))
        await websocket.close(CLOSE_FORBIDDEN_ORIGIN, "forbidden origin")
        return
    unread = await anyio.to_thread.run_sync(kernel.notifications.unread_count, user)
    connection = Connection(hub, websocket, user, credential)
    hub.add(connection)
    connection.send(
        {
            "type": "kernel.hello",
            "user": kernel.user_json(user),
            "unread": unread,
            "heartbeat_seconds": hub.settings.heartbeat_seconds,
            "max_message_bytes": hub.settings.max_message_bytes,
        }
    )
    await kernel.plugins.notify("realtime_connected", kernel=kernel, connection=connection)
    try:
        while not connection.closed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                raw = message.get("bytes") or b""
                try:
                    text = raw.decode()
                except UnicodeDecodeError:
                    text = "\x00"  # answered as invalid JSON
            await hub.dispatch(connection, text)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        try:
            await connection.finish()  # a close frame being flushed goes out before the socket ends
        finally:
            # A task of its own: when this one is being cancelled (a server stopping, a test client
            # closing), the connection must still leave the hub and plugins hear of it.
            hub.spawn(_closed(kernel, connection))


async def _closed(kernel: Kernel, connection: Connection) -> None:
    connection.hub.remove(connection)
    await kernel.plugins.notify("realtime_disconnected", kernel=kernel, connection=connection)
