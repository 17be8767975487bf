"""What routes answer with: compact JSON, the error shape, and cookies set the kernel's way."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kernel.errors import ApiError
from kernel.web.requests import get_kernel

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


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    """Set a cookie the kernel's way: HttpOnly, SameSite=Lax, Secure behind HTTPS."""
    secure = request.url.scheme == "https" or get_kernel(request).settings.server.https
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/")
