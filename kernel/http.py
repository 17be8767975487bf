"""Helpers every JSON route uses: reading bodies, answering, knowing the caller."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from kernel.errors import ApiError, validation_error
from kernel.identity import User

M = TypeVar("M", bound=BaseModel)


# json.dumps builds a new encoder whenever it is given options; build it once.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


class JSONResponse(Response):
    """A compact JSON response (no spaces, UTF-8 as is)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _ENCODER.encode(content).encode()


def error_response(error: ApiError) -> JSONResponse:
    """The JSON answer for ``error``: its status, its headers, the error shape."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


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


def validate(model: type[M], data: dict[str, Any]) -> M:
    """``data`` as ``model``, or the 422 that names the first bad field (forms use it too)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


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
