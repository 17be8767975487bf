"""The realtime hub: this process's open connections, the plugins' handlers, and delivery through the bus.

A client message is ``{"type": "<plugin>.<name>", "id": ..., ...}``; the
hub hands it to the handler that plugin registered for the type. Server
messages reach every open connection of a user: this process's directly,
other processes' through the bus (only those that hold a connection of the
user receive it), so Redis is needed only to cross processes. The protocol is documented
in docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from kernel.errors import ApiError
from kernel.identity import User
from kernel.realtime.bus import Bus, process_of
from kernel.realtime.connection import CLOSE_POLICY, CLOSE_SERVICE_RESTART, Connection, encode
from kernel.realtime.messages import Handler
from kernel.realtime.revocation import close_unauthorized

if TYPE_CHECKING:
    from kernel.app import Kernel
    from kernel.plugin.manager import PluginRecord

logger = logging.getLogger("everything.realtime")


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
        self.draining = False  # the process is stopping: /ws refuses new sockets (1012)

    # Lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self.bus.on_reconnected = self._mark_all_online
        await self.bus.start(self._deliver, self.process_key)
        self._heartbeat = asyncio.create_task(self._beat(), name="everything-heartbeat")

    async def stop(self, drain_seconds: float = 5.0) -> None:
        """Drain (again: what the plugins' stopping started is waited for too), then leave the bus."""
        await self.drain(drain_seconds)
        await self.bus.stop()

    async def drain(self, drain_seconds: float = 5.0) -> None:
        """Refuse new sockets and close every open one with 1012 (the client reconnects at once, to another process).

        Waits up to ``drain_seconds`` for the sockets to go and for what
        their closing starts — plugins hearing of it (calls give their
        parties a grace deadline), presence leaving the bus — which needs the
        bus still up. Under uvicorn the sockets are closed (also 1012) before
        the application is told to stop; then only that work is waited for.
        """
        self.draining = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for connection in [c for conns in self.by_user.values() for c in conns]:
            connection.close(CLOSE_SERVICE_RESTART, "the server is restarting")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_seconds
        await asyncio.sleep(0)
        while (self.by_key or self._tasks) and (left := deadline - loop.time()) > 0:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=left)  # finished work may spawn more: look again
            else:
                await asyncio.sleep(min(left, 0.05))  # a socket whose closing has not begun its work yet

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
        """Close (4401) the sockets whose session ended or whose token was deleted since they opened.

        Revocations close sockets at once through the bus (kernel/realtime/revocation.py);
        this re-check catches what a lost bus message or a session's expiry left open.
        """
        held = [(connection, connection.credential) for connection in connections if connection.credential is not None]
        session_ids = {credential.id for _, credential in held if credential.kind == "session"}
        token_ids = {credential.id for _, credential in held if credential.kind == "token"}
        if not held:
            return
        live_sessions, live_tokens = await anyio.to_thread.run_sync(self.kernel.identity.live_credentials, session_ids, token_ids)
        for connection, credential in held:
            if credential.id not in (live_sessions if credential.kind == "session" else live_tokens):
                close_unauthorized(connection)

    def spawn(self, work: Awaitable[None]) -> None:
        """Run ``work`` in the background, holding on to it until it ends (the loop keeps only weak references)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def crosses_processes(self) -> bool:
        """True when the bus joins several processes (Redis): other processes may hold connections and run work too."""
        return self.bus.shares_presence

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
        """Deliver the same ``message`` to each connection in ``keys``, encoding it once (a room's state to its members).

        This process's connections get it directly; the others' once per
        process that holds some of them (one bus message per process, however many sockets).
        """
        payload = encode(message)
        by_process: dict[str, list[str]] = {}
        for key in keys:
            by_process.setdefault(process_of(key), []).append(key)
        for keys_of_one in by_process.values():
            await self._publish("c:" + ",".join(keys_of_one), payload)

    async def broadcast(self, message: dict[str, Any]) -> None:
        """Deliver ``message`` to every open connection of the deployment (dropped, logged, if the bus fails)."""
        await self._publish("all", encode(message))

    async def publish_control(self, message: dict[str, Any]) -> None:
        """Tell every process of the deployment (this one included) about a change, such as a switch.

        Should the bus fail, the others still learn of it by the periodic refresh.
        """
        await self._publish("control", encode(message))

    async def _publish(self, target: str, payload: str) -> None:
        # This process's own connections first, directly: they need no bus, and Redis being away must not stop them.
        self._deliver(target, payload)
        if not self.bus.shares_presence or (target.startswith("c:") and process_of(target) == self.process_key):
            return
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

    def _mark_all_online(self) -> None:
        """Mark every open connection online again: Redis came back and may have lost their presence (it keeps none).

        Without it they would count as closed elsewhere until the next heartbeat.
        """
        for connection in list(self.by_key.values()):
            self.spawn(self._mark(connection, online=True))

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
            for key in target[2:].split(","):
                addressed = self.by_key.get(key)
                if addressed is not None:
                    addressed.send_text(payload)
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
        if connection.user.id not in self.by_user:
            self.bus.watch_user(connection.user.id)
        self.by_user.setdefault(connection.user.id, set()).add(connection)
        self.by_key[connection.key] = connection
        connection._writer = asyncio.create_task(connection._write())
        if self.bus.shares_presence:
            self.spawn(self._mark(connection, online=True))

    async def until_reachable(self, user_id: int) -> None:
        """Return once what other processes publish for ``user_id`` reaches this process: its channel is subscribed.

        A moment after :meth:`add`; at once while Redis is away (its own
        process's messages reach the user anyway). Greet a socket after this,
        and what the client does on hearing the greeting is sure to be heard back.
        """
        await self.bus.until_watching(user_id)

    def remove(self, connection: Connection) -> None:
        connections = self.by_user.get(connection.user.id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self.by_user[connection.user.id]
                self.bus.unwatch_user(connection.user.id)
        if self.by_key.pop(connection.key, None) is not None and self.bus.shares_presence:
            self.spawn(self._mark(connection, online=False))
        connection.closed = True
        # A flushing close ends in the writer itself, which removes its connection: cancelling
        # itself would end it as cancelled, and the endpoint waiting for it would raise.
        if connection._writer is not None and not connection._writer.done() and connection._writer is not asyncio.current_task():
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
