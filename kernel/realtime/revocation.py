"""Credentials at once everywhere: a change to sessions, tokens or accounts reaches every process within a moment.

Identity announces each change it makes (:class:`~kernel.identity.CredentialChange`:
sessions and tokens revoked, accounts whose profile, password or rights
changed). :class:`Announcer` puts it on the bus as a ``kernel.credentials``
control message, from whichever thread made it; a process that serves
nothing (the CLI) tells the servers through Redis directly. In every process,
this one included, :func:`on_control` drops the named entries from the
identity caches, closes the open sockets that a revoked credential
authenticated (4401 after an ``unauthorized`` error, as the heartbeat's
re-check does), and gives the open sockets of a changed account its new row.

Should the bus lose a message, nothing stays wrong for long: the caches
expire within seconds and every heartbeat re-checks the open sockets'
credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from kernel.identity import CredentialChange
from kernel.realtime.bus import publish_control_from_outside
from kernel.realtime.connection import CLOSE_UNAUTHORIZED, Connection

if TYPE_CHECKING:
    from kernel.app import Kernel
    from kernel.realtime.hub import Hub

logger = logging.getLogger("everything.realtime")

# How long a worker thread waits for its announcement to be published before it answers anyway. Short:
# the thread is one of the few database threads (DB_THREADS), and a burst of revocations while Redis is
# slow must not hold them all; a publish to a healthy Redis takes milliseconds, and one that takes longer
# still goes out in the background (the heartbeat's re-check closes what a lost message left open).
PUBLISH_WAIT_SECONDS = 0.5


def close_unauthorized(connection: Connection) -> None:
    """End a socket whose credential is gone: an ``unauthorized`` error, then close code 4401."""
    connection.send({"type": "error", "ref": None, "code": "unauthorized", "message": "Your session ended; sign in again."})
    connection.close(CLOSE_UNAUTHORIZED, "the credential was revoked", flush=True)


class Announcer:
    """Publishes identity's changes to every process; set as ``Identity.announce`` by the composition root.

    Identity writes run in worker threads, on the event loop, or in a
    command that serves nothing. From a worker thread the announcement is
    published on the serving loop and waited for (up to
    :data:`PUBLISH_WAIT_SECONDS`), so that when the request that revoked a
    credential is answered, every process has been told.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.loop: asyncio.AbstractEventLoop | None = None  # the serving loop, once the kernel has started
        self._outside: set[asyncio.Task[bool]] = set()

    def serve_on(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Publish through this loop's hub from now on (None: the kernel stopped serving)."""
        self.loop = loop

    def __call__(self, change: CredentialChange) -> None:
        message = change.as_message()
        hub = self.kernel.realtime
        loop = self.loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop.is_closed() or not loop.is_running():
            self._tell_from_outside(message, running)
        elif running is loop:
            hub.spawn(hub.publish_control(message))
        else:
            future = asyncio.run_coroutine_threadsafe(hub.publish_control(message), loop)
            try:
                future.result(PUBLISH_WAIT_SECONDS)
            except TimeoutError:
                logger.warning("announcing a credential change took over %g s; it goes on in the background", PUBLISH_WAIT_SECONDS)

    def _tell_from_outside(self, message: dict[str, Any], running: asyncio.AbstractEventLoop | None) -> None:
        settings = self.kernel.settings
        if settings.bus.url is None:
            return  # one process at most, which re-reads within seconds
        if running is None:
            asyncio.run(publish_control_from_outside(settings, message))
            return
        task = running.create_task(publish_control_from_outside(settings, message))
        self._outside.add(task)
        task.add_done_callback(self._outside.discard)


def on_control(kernel: Kernel) -> Callable[[dict[str, Any]], None]:
    """The control listener that applies ``kernel.credentials`` messages in this process."""

    def listener(message: dict[str, Any]) -> None:
        if message.get("type") != "kernel.credentials":
            return
        change = CredentialChange.from_message(message)
        if change is None:
            logger.warning("ignored a malformed kernel.credentials message: %r", message)
            return
        kernel.identity.forget(change)
        hub = kernel.realtime
        close_revoked(hub, change)
        connected = frozenset(user_id for user_id in change.users if user_id in hub.by_user)
        if connected:
            hub.spawn(_refresh_users(kernel, connected))

    return listener


def close_revoked(hub: Hub, change: CredentialChange) -> None:
    """Close this process's sockets that a session or token named in ``change`` authenticated."""
    if not change.sessions and not change.tokens:
        return
    for connections in list(hub.by_user.values()):
        for connection in list(connections):
            credential = connection.credential
            if credential is not None and credential.id in (change.sessions if credential.kind == "session" else change.tokens):
                close_unauthorized(connection)


async def _refresh_users(kernel: Kernel, user_ids: frozenset[int]) -> None:
    """Give the open sockets of changed accounts the accounts as they now are (handlers read ``connection.user``)."""
    for user_id in user_ids:
        user = await anyio.to_thread.run_sync(kernel.identity.user_by_id, user_id)
        if user is None:
            continue
        for connection in list(kernel.realtime.by_user.get(user_id, ())):
            connection.user = user
