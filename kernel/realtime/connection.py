"""One open websocket of a signed-in user: its bounded send queue, its rate limit and how it closes.

Each connection has a bounded send queue drained by its own task: a slow
client fills only its own queue, and is disconnected (close code 4408)
rather than let it hold up anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from kernel.identity import Credential, User

if TYPE_CHECKING:
    from kernel.realtime.hub import Hub

logger = logging.getLogger("everything.realtime")

# Close codes (4000-4999 are the application's own).
# The server is stopping (a deploy, a restart; uvicorn sends the same at shut-down): reconnect at once.
CLOSE_SERVICE_RESTART = 1012
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
        self._close_with: tuple[int, str] | None = None  # set by a flushing close, for the writer to close with
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
                    assert self._close_with is not None  # only a flushing close queues the end
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
