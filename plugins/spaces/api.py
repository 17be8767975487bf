"""The Spaces JSON API under ``/api/spaces`` (docs/spaces-protocol.md lists it)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import ApiError, JSONResponse, get_kernel, media_response, query_limit, read_json, require_user
from plugins.spaces.service import SPACES, Spaces, unknown_space


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    # ISO 8601; without an offset it is UTC. Absent or null: the Space is live at once.
    starts_at: datetime | None = None
    # Record from the start (the host needs the feature spaces.record).
    record: bool = False


def spaces_of(request: Request) -> Spaces:
    return SPACES.of(get_kernel(request))


def space_id(request: Request) -> int:
    """The Space id in the path; 404 ``unknown_space`` for anything but a positive number."""
    raw = request.path_params["space_id"]
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not re.fullmatch(r"[1-9][0-9]{0,14}", raw):
        raise unknown_space()
    return int(raw)


async def create(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, CreateBody)
    return JSONResponse(await spaces_of(request).create(user, body.title, body.starts_at, body.record), status_code=201)


async def list_live(request: Request) -> Response:
    user = require_user(request)
    status = request.query_params.get("status", "live")
    if status == "scheduled":
        return JSONResponse({"results": await spaces_of(request).upcoming(user, query_limit(request)), "next_cursor": None})
    if status != "live":
        raise ApiError(422, "validation_error", "status: live or scheduled.", field="status")
    page = await spaces_of(request).list_live(user, request.query_params.get("cursor"), query_limit(request))
    return JSONResponse(page.as_json())


async def one(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await spaces_of(request).get(user, space_id(request)))


async def listeners(request: Request) -> Response:
    user = require_user(request)
    page = await spaces_of(request).listeners(user, space_id(request), request.query_params.get("cursor"), query_limit(request, 50, 200))
    return JSONResponse(page.as_json())


async def recording(request: Request) -> Response:
    user = require_user(request)
    spaces = spaces_of(request)
    stored = await spaces.recording_file(user, space_id(request), request.path_params["name"])
    # Answered in byte ranges on every storage backend, so a player can seek.
    return await media_response(request, spaces.recordings.storage, stored, "audio/ogg", {"Cache-Control": "private, max-age=3600"})


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
    Route("/api/spaces/{space_id}/listeners", listeners, methods=["GET"]),
    Route("/api/spaces/{space_id}/recordings/{name}", recording, methods=["GET"]),
]
