"""Exception handlers: JSON errors for the API, pages inside the layout for browsers."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from kernel.errors import STATUS_CODES, STATUS_MESSAGES, ApiError
from kernel.web.rendering import render
from kernel.web.requests import get_kernel, wants_html
from kernel.web.responses import error_response
from kernel.web.upsell import upsell_page

logger = logging.getLogger("everything.errors")

ERROR_TITLES = {401: "Sign in needed", 403: "Not allowed", 404: "Page not found", 500: "Something went wrong"}


def _respond(request: Request, error: ApiError) -> Response:
    if wants_html(request) and request.scope.get("type") == "http":
        try:
            if error.code == "premium_required":
                return _upsell(request, error)
            page = render(
                request,
                "error.html",
                {"status": error.status, "title": ERROR_TITLES.get(error.status, "Something is wrong"), "message": error.message},
                status_code=error.status,
            )
            page.headers.update(error.headers)
            return page
        except Exception:
            logger.exception("the error page itself failed to render")
    return error_response(error)


def _upsell(request: Request, error: ApiError) -> Response:
    decision = get_kernel(request).entitlements.check(request.scope.get("user"), error.extra["feature"])
    return upsell_page(request, decision, status_code=402)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _respond(request, exc)


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = STATUS_CODES.get(exc.status_code, "error")
    message = STATUS_MESSAGES.get(exc.status_code) or str(exc.detail)
    return _respond(request, ApiError(exc.status_code, code, message, headers=dict(exc.headers or {})))


async def server_error(request: Request, exc: Exception) -> Response:
    logger.error(
        "unhandled error in %s %s", request.method, request.url.path, exc_info=exc, extra={"request_id": request.scope.get("request_id")}
    )
    return _respond(request, ApiError(500, "internal_error", STATUS_MESSAGES[500]))


exception_handlers = {ApiError: api_error, HTTPException: http_exception, Exception: server_error}
