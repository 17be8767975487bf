"""The kernel's middleware, written as plain ASGI callables: the wrapping kind costs four times as much (DESIGN.md)."""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kernel import logs
from kernel.errors import ApiError
from kernel.web import csrf
from kernel.web.error_pages import server_error
from kernel.web.responses import error_response
from kernel.web.sessions import SESSION_COOKIE

if TYPE_CHECKING:
    from kernel.app import Kernel
    from kernel.entitlements import Entitlements
    from kernel.identity import Credential, User
    from kernel.notifications import Notifications

request_log = logging.getLogger("everything.requests")


class RequestLogMiddleware:
    """One structured log line per HTTP request, and an ``X-Request-ID`` on every response."""

    def __init__(self, app: ASGIApp, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # An identifier for correlating lines, not a secret: no system call for it.
        request_id = f"{random.getrandbits(64):016x}"
        scope["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if status:
                raise  # too late for an error page: the server closes the connection
            # Answer here rather than in Starlette's outer ServerErrorMiddleware,
            # so that the 500 carries the request id like every other answer.
            response = await server_error(Request(scope), exc)
            await response(scope, receive, send_with_id)
        finally:
            if self.enabled and request_log.isEnabledFor(logging.INFO):
                self._log(scope, request_id, status, started)

    @staticmethod
    def _log(scope: Scope, request_id: str, status: int, started: float) -> None:
        user = scope.get("user")
        client = scope.get("client")
        username = user.username if user else None
        address = client[0] if client else None
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        handler = logs.only_json_handler(request_log)
        if handler is not None:
            line = logs.request_line(request_id, scope["method"], scope["path"], status, duration_ms, username, address)
            handler.emit_line(line)
            return
        # What request_log.info("request", extra=...) makes, without its caller look-up.
        record = logging.LogRecord(request_log.name, logging.INFO, __file__, 0, "request", None, None)
        record.__dict__.update(
            event="request",
            request_id=request_id,
            method=scope["method"],
            path=scope["path"],
            status=status,
            duration_ms=duration_ms,
            user=username,
            client=address,
        )
        request_log.handle(record)


class BodyLimitMiddleware:
    """413 in the error shape for bodies over the limit, whether declared or streamed.

    ``larger`` maps exact paths to their own limits (upload routes, which
    plugins declare with :meth:`Kernel.allow_large_bodies`).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger if larger is not None else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.max_bytes)
        framed = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                framed = True
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await error_response(_too_large(limit))(scope, receive, send)
                    return
            elif name == b"transfer-encoding":
                framed = True
        if not framed:
            # HTTP/1.1: a request with neither header has no body to count.
            await self.app(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, limited_receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The request body is larger than {limit} bytes.")


def _is_page(scope: Scope) -> bool:
    return scope["type"] == "http" and scope["method"] == "GET" and not scope["path"].startswith(("/api/", "/static/"))


def _load(entitlements: Entitlements | None, notifications: Notifications | None, user: User) -> None:
    if entitlements is not None:
        entitlements.held_plans(user.id)
    if notifications is not None:
        notifications.unread_count(user)


# Log-in and sign-up replace the session rather than act with it.
CSRF_EXEMPT_PATHS = frozenset({"/api/auth/login", "/api/auth/signup"})


def _needs_csrf_header(scope: Scope) -> bool:
    """Cookie-authenticated API writes; pages check the form field themselves."""
    return (
        scope["type"] == "http"
        and scope["method"] not in ("GET", "HEAD", "OPTIONS")
        and scope["path"].startswith("/api/")
        and scope["path"] not in CSRF_EXEMPT_PATHS
    )


class AuthMiddleware:
    """Resolve the session cookie or bearer token to ``scope["user"]``.

    A bearer token that does not resolve is refused with 401 at once: an API
    client must learn that its token is dead. A dead session cookie makes the
    request anonymous instead, as a browser expects after signing out
    elsewhere.
    """

    def __init__(self, app: ASGIApp, kernel: Kernel) -> None:
        self.app = app
        self.kernel = kernel
        self.identity = kernel.identity
        self.secret_key = kernel.secret_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # get_kernel() reads it here: cheaper than app.state on every request.
        scope["everything.kernel"] = self.kernel
        scope["user"] = None
        scope["credential"] = None
        bearer = None
        cookie_header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    bearer = token.strip()
            elif name == b"cookie":
                cookie_header = value.decode("latin-1")

        if bearer is not None:
            resolved = await self._resolve("token", bearer)
            if resolved is None:
                dead = ApiError(401, "invalid_token", "The bearer token is unknown or revoked.", headers={"WWW-Authenticate": "Bearer"})
                await error_response(dead)(scope, receive, send)
                return
            scope["credential"], scope["user"] = resolved
            await self._load_plans(resolved[1], scope)
        elif cookie_header:
            secret = cookie_parser(cookie_header).get(SESSION_COOKIE)
            if secret:
                scope["session_secret"] = secret
                resolved = await self._resolve("session", secret)
                if resolved is not None:
                    scope["credential"], scope["user"] = resolved
                    await self._load_plans(resolved[1], scope)
                    if _needs_csrf_header(scope) and not csrf.matches(secret, self.secret_key, _header(scope, b"x-csrf-token")):
                        refused = ApiError(403, "csrf_failed", "Send the X-CSRF-Token header with cookie-authenticated changes.")
                        await error_response(refused)(scope, receive, send)
                        return
        await self.app(scope, receive, send)

    async def _load_plans(self, user: User, scope: Scope) -> None:
        # Every answer may show the viewer's badge and locks, and every page their unread
        # count: load what the caches have let go here, off the event loop, in one hop,
        # rather than in the middle of a render.
        entitlements, notifications = self.kernel.entitlements, self.kernel.notifications
        plans = not entitlements.is_cached(user.id)
        unread = _is_page(scope) and not notifications.is_cached(user.id)
        if plans or unread:
            await anyio.to_thread.run_sync(_load, entitlements if plans else None, notifications if unread else None, user)

    async def _resolve(self, kind: str, secret: str) -> tuple[Credential, User] | None:
        hit = self.identity.resolve_cached(kind, secret)
        if hit is not None:
            return hit
        return await anyio.to_thread.run_sync(self.identity.resolve_user, kind, secret)
