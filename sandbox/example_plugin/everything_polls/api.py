"""``/api/polls/…`` and the poll's own page ``/polls/{id}``."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from everything_polls.service import POLLS, Polls, unknown_poll
from kernel import (
    JSONResponse,
    current_user,
    feature_required,
    get_kernel,
    login_redirect,
    read_form,
    read_json,
    redirect,
    render,
    require_user,
)

Answer = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=25)]


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    post_id: int
    question: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=140)]
    options: Annotated[list[Answer], Field(min_length=2, max_length=4)]
    hours: int = Field(default=24, ge=1, le=7 * 24)


class VoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    option: int


def polls_of(request: Request) -> Polls:
    return POLLS.of(get_kernel(request))


def poll_id(request: Request) -> int:
    raw = request.path_params["poll_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 15:
        raise unknown_poll()
    return int(raw)


@feature_required("polls.create")
async def create(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, CreateBody)
    poll = await anyio.to_thread.run_sync(polls_of(request).create, user, body.post_id, body.question, body.options, body.hours)
    return JSONResponse(poll, status_code=201)


async def one(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await anyio.to_thread.run_sync(polls_of(request).get, user, poll_id(request)))


async def vote(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, VoteBody)
    return JSONResponse(await anyio.to_thread.run_sync(polls_of(request).vote, user, poll_id(request), body.option))


async def page(request: Request) -> Response:
    """``GET /polls/{id}``: the poll, its results, and a vote form."""
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request)
    poll = await anyio.to_thread.run_sync(polls_of(request).get, viewer, poll_id(request))
    return render(request, "polls/poll.html", {"poll": poll})


async def vote_form(request: Request) -> Response:
    """``POST /polls/{id}/vote`` from the page or a post's widget; back where it came from."""
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request)
    form = await read_form(request)
    option = str(form.get("option", ""))
    identifier = poll_id(request)
    if option.isascii() and option.isdigit():
        await anyio.to_thread.run_sync(polls_of(request).vote, viewer, identifier, int(option))
    return redirect(f"/polls/{identifier}")


routes = [
    Route("/api/polls/polls", create, methods=["POST"]),
    Route("/api/polls/polls/{poll_id}", one, methods=["GET"]),
    Route("/api/polls/polls/{poll_id}/votes", vote, methods=["POST"]),
    Route("/polls/{poll_id}", page, methods=["GET"]),
    Route("/polls/{poll_id}/vote", vote_form, methods=["POST"]),
]
