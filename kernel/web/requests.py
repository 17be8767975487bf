"""What a route reads from its request: the kernel serving it, the caller, the JSON body, the limit."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from starlette.requests import HTTPConnection, Request

from kernel.errors import ApiError, validate
from kernel.identity import User

if TYPE_CHECKING:
    from kernel.app import Kernel

M = TypeVar("M", bound=BaseModel)


def get_kernel(connection: HTTPConnection) -> Kernel:
    """The kernel serving this request or websocket."""
    kernel: Kernel = connection.scope.get("everything.kernel") or connection.app.state.kernel
    return kernel


async def read_json(request: Request, model: type[M]) -> M:
    """The body parsed as ``model``: 415 when not JSON, 400 when malformed, 422 naming the field.

    An empty body counts as ``{}``. A non-empty one must be declared
    ``application/json``: a cross-site form or ``no-cors`` fetch cannot send
    that without the browser asking first, which is what lets log-in and
    sign-up go without a CSRF token.
    """
    raw = await request.body()
    if not raw.strip():
        data: Any = {}
    else:
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(422, "validation_error", "The body must be a JSON object.")
    return validate(model, data)


def current_user(connection: HTTPConnection) -> User | None:
    """The signed-in user of this request or websocket, or None."""
    return connection.scope.get("user")


def require_user(connection: HTTPConnection) -> User:
    """The signed-in user; 401 ``unauthorized`` when there is none."""
    user = connection.scope.get("user")
    if user is None:
        raise ApiError(401, "unauthorized", "Sign in, or send a bearer token.")
    return user


def current_session_id(connection: HTTPConnection) -> int | None:
    """The id of the browser session this request came with; None for bearer tokens and visitors."""
    credential = connection.scope.get("credential")
    return credential.id if credential is not None and credential.kind == "session" else None


def client_ip(connection: HTTPConnection) -> str:
    """The address the request came from, as the server sees it (empty when unknown); log-in limits count by it."""
    return connection.client.host if connection.client else ""


def query_limit(request: Request, default: int = 20, maximum: int = 50) -> int:
    """The ``limit`` query parameter, 1 to ``maximum``; 422 otherwise."""
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise ApiError(422, "validation_error", f"limit: must be a whole number from 1 to {maximum}", field="limit")
    return value


def wants_html(request: Request) -> bool:
    """True for page requests: everything outside ``/api/`` whose client accepts HTML."""
    if request.url.path.startswith("/api/") or request.url.path in ("/healthz", "/readyz"):
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept or "*/*" in accept or not accept
