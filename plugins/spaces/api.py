"""The Spaces JSON API under ``/api/spaces`` (docs/spaces-protocol.md lists it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import ApiError, JSONResponse, get_kernel, query_limit, read_json, require_user
from plugins.spaces.service import Spaces, unknown_space


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    # ISO 8601; without an offset it is UTC. Absent or null: the Space is live at once.
    starts_at: datetime | None = None


def spaces_of(request: Request) -> Spaces:
    return get_kernel(request).plugin_state["spaces"]


def space_id(request: Request) -> int:
    raw = request.path_params["space_id"]
    if not raw.isdigit() or len(raw) > 15 or int(raw) < 1:
        raise unknown_space()
    return int(raw)


async def create(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, CreateBody)
    if not isinstance(body.title, str) or not body.title:
        raise ApiError(422, "validation_error", "title: 1 to 100 characters.", field="title")
    return JSONResponse(await spaces_of(request).create(user, body.title, body.starts_at), status_code=201)


async def list_live(request: Request) -> Response:
    user = require_user(request)
    page = await spaces_of(request).list_live(user, request.query_params.get("cursor"), query_limit(request))
    return JSONResponse({"results": page.results, "next_cursor": page.next_cursor})


async def one(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await spaces_of(request).get(user, space_id(request)))


async def start(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await spaces_of(request).start(user, space_id(request)))


async def end(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await spaces_of(request).end(user, space_id(request)))


routes = [
    Route("/api/spaces", create, methods=["POST"]),
    Route("/api/spaces", list_live, methods=["GET"]),
    Route("/api/spaces/{space_id}", one, methods=["GET"]),
    Route("/api/spaces/{space_id}/start", start, methods=["POST"]),
    Route("/api/spaces/{space_id}/end", end, methods=["POST"]),
]
