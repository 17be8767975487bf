"""What realtime handlers are: the handler types the hub registers and calls, and the feature guard that wraps one.

A handler validates its message with :func:`kernel.validate` (:mod:`kernel.errors`), as the HTTP API
validates a body, and signaling with :func:`kernel.validate_signal`; neither lives here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread

if TYPE_CHECKING:
    from kernel.realtime.connection import Connection

# What a handler answers: a dict sent back as the reply, or None.
Reply = TypeVar("Reply", bound="dict[str, Any] | None")
# A handler of ``(connection, message)``, a plain function or a coroutine function; one that is a coroutine function.
AnyHandler = Callable[["Connection", dict[str, Any]], Awaitable[Reply] | Reply]
AsyncHandler = Callable[["Connection", dict[str, Any]], Awaitable[Reply]]
Handler = AnyHandler[dict[str, Any] | None]


def realtime_feature_required(feature: str) -> Callable[[AnyHandler[Reply]], AsyncHandler[Reply]]:
    """Decorate a realtime handler: the sender must hold ``feature``, else an ``error`` with code ``premium_required``.

    The decorated handler is a coroutine function that answers what the handler answers.
    """

    def decorate(handler: AnyHandler[Reply]) -> AsyncHandler[Reply]:
        @functools.wraps(handler)
        async def checked(connection: Connection, message: dict[str, Any]) -> Reply:
            entitlements = connection.kernel.entitlements
            if not entitlements.is_cached(connection.user.id):
                await anyio.to_thread.run_sync(entitlements.held_plans, connection.user.id)
            entitlements.require(connection.user, feature)
            result = handler(connection, message)
            return await result if inspect.isawaitable(result) else result

        return checked

    return decorate
