"""Errors in the one shape every client sees.

API paths answer ``{"error": {"code", "message", ...}}`` with the right
status; pages answer a readable page inside the layout. Route code raises
:class:`ApiError` and never builds error responses by hand.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """A refusal with an HTTP status, a stable machine code and a human message.

    Extra keyword arguments become extra members of the error object (such
    as ``field`` for validation errors).
    """

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def not_found(message: str = "There is nothing here.") -> ApiError:
    return ApiError(404, "not_found", message)


def validation_error(exc: ValidationError) -> ApiError:
    """The 422 for the first problem pydantic found, naming the field."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"]
    if first["type"] == "missing":
        message = "This field is required"
    elif first["type"] == "extra_forbidden":
        message = "Unknown field"
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return ApiError(422, "validation_error", f"{field}: {message}" if field else message, field=field)


def validate(model: type[M], data: dict[str, Any]) -> M:
    """``data`` as ``model``, or the 422 that names the first bad field (forms use it too)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}

STATUS_MESSAGES = {
    400: "The request could not be understood.",
    401: "You need to sign in.",
    403: "You are not allowed to do that.",
    404: "There is nothing here.",
    405: "That method is not allowed here.",
    413: "The request body is too large.",
    429: "Too many requests. Try again later.",
    500: "Something went wrong on our side. It has been logged.",
}
