"""``/ws``: authenticate the socket, greet it, then read its messages until the client goes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.websockets import WebSocket, WebSocketDisconnect

from kernel.identity import User
from kernel.plugin.answers import settle
from kernel.realtime.connection import CLOSE_FORBIDDEN_ORIGIN, CLOSE_SERVICE_RESTART, CLOSE_UNAUTHORIZED, Connection, encode
from kernel.web.requests import get_kernel

if TYPE_CHECKING:
    from kernel.app import Kernel


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
    if hub.draining:
        # The process is stopping (checked after the last wait, so none slips past Hub.stop's closing):
        # the client reconnects at once, and the balancer sends it to another process.
        await websocket.close(CLOSE_SERVICE_RESTART, "the server is restarting")
        return
    connection = Connection(hub, websocket, user, credential)
    hub.add(connection)
    # From here on the connection leaves the hub however this ends: a client gone, or this task
    # cancelled, while it waits for its channel or while plugins hear of it.
    try:
        await hub.until_reachable(user.id)  # what the client does on the greeting may send it messages from other processes
        connection.send(
            {
                "type": "kernel.hello",
                "user": kernel.user_json(user),
                "unread": unread,
                "heartbeat_seconds": hub.settings.heartbeat_seconds,
                "max_message_bytes": hub.settings.max_message_bytes,
            }
        )
        await settle(kernel.plugins.hook.realtime_connected(kernel=kernel, connection=connection))
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
    await settle(kernel.plugins.hook.realtime_disconnected(kernel=kernel, connection=connection))
