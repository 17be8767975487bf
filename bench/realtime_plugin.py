"""A bench-only plugin: realtime handlers that ``bench/realtime.py`` drives to time delivery.

Loaded only by ``bench/realtime_server.py`` (``create_app(..., plugins={"bench":
"bench.realtime_plugin"})``), never by a deployment. It imports only the
kernel's public API, as a plugin must.

Message types (client to server):

- ``bench.whoami`` — replies ``{"id": <the sender's user id>}``, so that a
  client learns the id others address it by;
- ``bench.to_user`` ``{to, sent_at, seq}`` — ``to`` is a user id (int) or a
  username (str); sends ``{"type": "bench.delivered", "sent_at", "seq", "from"}``
  to every open connection of that user through ``kernel.realtime.send_to_user``.
  No reply: the only traffic is the delivery being timed;
- ``bench.to_all`` ``{sent_at, seq}`` — sends ``{"type": "bench.broadcast",
  "sent_at", "seq"}`` to every open connection through ``kernel.realtime.broadcast``.

``sent_at`` is opaque to the server (the client's ``time.time_ns()``) and is
echoed back as given.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from kernel import ApiError, Connection, Kernel, Manifest, hookimpl

NAME = "bench"


@hookimpl
def manifest() -> Manifest:
    return Manifest(name=NAME, title="Bench", version="1.0", description="Realtime handlers for bench/realtime.py.")


async def whoami(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
    return {"id": connection.user.id}


async def to_user(connection: Connection, message: dict[str, Any]) -> None:
    kernel = connection.kernel
    target = message.get("to")
    if isinstance(target, str):
        # A database read: off the event loop, as a real plugin would do it.
        user = await anyio.to_thread.run_sync(kernel.user, target)
        if user is None:
            raise ApiError(404, "unknown_user", "No such user.")
        target = user.id
    elif not isinstance(target, int) or isinstance(target, bool):
        raise ApiError(422, "validation_error", "to: a user id or a username", field="to")
    await kernel.realtime.send_to_user(
        target,
        {"type": "bench.delivered", "sent_at": message.get("sent_at"), "seq": message.get("seq"), "from": connection.user.id},
    )


async def to_all(connection: Connection, message: dict[str, Any]) -> None:
    await connection.kernel.realtime.broadcast(
        {"type": "bench.broadcast", "sent_at": message.get("sent_at"), "seq": message.get("seq")}
    )


@hookimpl
def register_realtime(kernel: Kernel) -> dict[str, Any]:
    return {"bench.whoami": whoami, "bench.to_user": to_user, "bench.to_all": to_all}
