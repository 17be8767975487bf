"""JSON API for notifications: the list with the unread count, and marking read."""

from __future__ import annotations

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.identity import MAX_ID
from kernel.web.requests import get_kernel, query_limit, read_json, require_user
from kernel.web.responses import JSONResponse


class MarkReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[int] | None = Field(default=None, max_length=500)
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> MarkReadIn:
        if (self.ids is None) == (not self.all):
            raise ValueError("give ids, or all: true")
        if self.ids is not None and not all(0 < item <= MAX_ID for item in self.ids):
            raise ValueError("ids: notification ids are positive whole numbers")
        return self


async def list_notifications(request: Request) -> Response:
    """``GET /api/notifications?unread=true&cursor=&limit=``: newest first, with the unread count."""
    user = require_user(request)
    kernel = get_kernel(request)
    unread_only = request.query_params.get("unread") in ("1", "true")
    page, unread = await anyio.to_thread.run_sync(
        kernel.notifications.list, user, request.query_params.get("cursor"), query_limit(request), unread_only
    )
    return JSONResponse(page.as_json(unread=unread))


async def mark_read(request: Request) -> Response:
    """``POST /api/notifications/read`` with ``{"ids": [...]}`` or ``{"all": true}`` → ``{"unread": n}``."""
    user = require_user(request)
    body = await read_json(request, MarkReadIn)
    unread = await get_kernel(request).notifications.mark_read(user, None if body.all else body.ids)
    return JSONResponse({"unread": unread})


routes = [
    Route("/api/notifications", list_notifications, methods=["GET"]),
    Route("/api/notifications/read", mark_read, methods=["POST"]),
]
