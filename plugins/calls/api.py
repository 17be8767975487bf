"""The calls JSON API under ``/api/calls/`` (docs/calls-protocol.md lists it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import ApiError, JSONResponse, get_kernel, ice_servers, query_limit, read_json, require_user
from plugins.calls.screening import MEDIA
from plugins.calls.service import CALLS, Calls
from plugins.calls.switchboard import unknown_call


class SettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool
    allow: list[str]


def calls_of(request: Request) -> Calls:
    return CALLS.of(get_kernel(request))


async def get_settings(request: Request) -> Response:
    return JSONResponse(await calls_of(request).get_settings(require_user(request)))


async def put_settings(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, SettingsBody)
    return JSONResponse(await calls_of(request).put_settings(user, body.enabled, body.allow))


async def can_call(request: Request) -> Response:
    user = require_user(request)
    media = request.query_params.get("media", "audio")
    if media not in MEDIA:
        raise ApiError(422, "validation_error", "media: 'audio' or 'video'", field="media")
    return JSONResponse(await calls_of(request).can_call(user, request.path_params["username"], media))


async def history(request: Request) -> Response:
    user = require_user(request)
    page = await calls_of(request).history(user, request.query_params.get("cursor"), query_limit(request))
    return JSONResponse(page.as_json())


async def one_call(request: Request) -> Response:
    user = require_user(request)
    found = await calls_of(request).call(user, request.path_params["call_id"])
    if found is None:
        raise unknown_call()
    return JSONResponse(found)


async def get_ice_servers(request: Request) -> Response:
    user = require_user(request)
    calls = calls_of(request)
    return JSONResponse(ice_servers(calls.settings, user.id), headers={"Cache-Control": "no-store"})


routes = [
    Route("/api/calls/settings", get_settings, methods=["GET"]),
    Route("/api/calls/settings", put_settings, methods=["PUT"]),
    Route("/api/calls/can-call/{username}", can_call, methods=["GET"]),
    Route("/api/calls/history", history, methods=["GET"]),
    Route("/api/calls/ice-servers", get_ice_servers, methods=["GET"]),
    # Under its own prefix, so that no call id can be shadowed by the fixed routes above.
    Route("/api/calls/calls/{call_id}", one_call, methods=["GET"]),
]
