"""JSON API for the global address book: users, directory, follows, contacts, blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.errors import ApiError
from kernel.identity import check_text
from kernel.pagination import Page
from kernel.web.requests import current_user, get_kernel, query_limit, read_json, require_user
from kernel.web.responses import JSONResponse

if TYPE_CHECKING:
    from kernel.app import Kernel


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nickname: str = Field(default="", max_length=50)


async def users_page(kernel: Kernel, page: Page) -> Response:
    """A page of users as every list of people answers it, their badges loaded in one query first."""
    await kernel.prepare_users(page.results)
    return JSONResponse(page.as_json(kernel.user_json))


async def get_user(request: Request) -> Response:
    kernel = get_kernel(request)
    user = await kernel.directory.find(request.path_params["username"])
    body = kernel.user_json(user)
    viewer = current_user(request)
    if viewer is not None and viewer.id != user.id:
        body["relationship"] = await anyio.to_thread.run_sync(kernel.address_book.relation, viewer.id, user.id)
    return JSONResponse(body)


async def directory(request: Request) -> Response:
    kernel = get_kernel(request)
    q = check_text(request.query_params.get("q", ""), "q")
    if len(q) > 50:
        raise ApiError(422, "validation_error", "q: at most 50 characters", field="q")
    limit = query_limit(request)
    viewer = current_user(request)
    page = await anyio.to_thread.run_sync(
        kernel.address_book.search, q, limit, request.query_params.get("cursor"), viewer.id if viewer else None
    )
    return await users_page(kernel, page)


async def follow(request: Request) -> Response:
    user = require_user(request)
    kernel = get_kernel(request)
    other = await kernel.directory.find(request.path_params["username"])
    if request.method == "PUT":
        await kernel.directory.follow(user, other)
    else:
        await kernel.directory.unfollow(user, other)
    updated = await anyio.to_thread.run_sync(kernel.identity.user_by_id, other.id)
    return JSONResponse(kernel.user_json(updated or other))


async def followers(request: Request) -> Response:
    return await _follow_list(request, "followers")


async def following(request: Request) -> Response:
    return await _follow_list(request, "following")


async def _follow_list(request: Request, which: str) -> Response:
    kernel = get_kernel(request)
    user = await kernel.directory.find(request.path_params["username"])
    limit = query_limit(request)
    lister = kernel.address_book.followers if which == "followers" else kernel.address_book.following
    page = await anyio.to_thread.run_sync(lister, user, request.query_params.get("cursor"), limit)
    return await users_page(kernel, page)


async def list_contacts(request: Request) -> Response:
    user = require_user(request)
    kernel = get_kernel(request)
    page = await anyio.to_thread.run_sync(kernel.address_book.list_contacts, user, request.query_params.get("cursor"), query_limit(request))
    await kernel.prepare_users([item["user"] for item in page.results])
    return JSONResponse(page.as_json(lambda contact: {**contact, "user": kernel.user_json(contact["user"])}))


async def put_contact(request: Request) -> Response:
    user = require_user(request)
    kernel = get_kernel(request)
    body = await read_json(request, ContactIn)
    other = await kernel.directory.find(request.path_params["username"])
    nickname = body.nickname.strip()
    created = await kernel.directory.add_contact(user, other, nickname)
    return JSONResponse({"user": kernel.user_json(other), "nickname": nickname}, status_code=201 if created else 200)


async def delete_contact(request: Request) -> Response:
    user = require_user(request)
    kernel = get_kernel(request)
    other = await kernel.directory.find(request.path_params["username"])
    await kernel.directory.remove_contact(user, other)
    return Response(status_code=204)


async def list_blocks(request: Request) -> Response:
    user = require_user(request)
    kernel = get_kernel(request)
    page = await anyio.to_thread.run_sync(kernel.address_book.list_blocks, user, request.query_params.get("cursor"), query_limit(request))
    return await users_page(kernel, page)


async def block(request: Request) -> Response:
    user = require_user(request)
    kernel = get_kernel(request)
    other = await kernel.directory.find(request.path_params["username"])
    if request.method == "PUT":
        await kernel.directory.block(user, other)
    else:
        await kernel.directory.unblock(user, other)
    return Response(status_code=204)


routes = [
    Route("/api/users/{username}", get_user, methods=["GET"]),
    Route("/api/users/{username}/follow", follow, methods=["PUT", "DELETE"]),
    Route("/api/users/{username}/followers", followers, methods=["GET"]),
    Route("/api/users/{username}/following", following, methods=["GET"]),
    Route("/api/directory", directory, methods=["GET"]),
    Route("/api/contacts", list_contacts, methods=["GET"]),
    Route("/api/contacts/{username}", put_contact, methods=["PUT"]),
    Route("/api/contacts/{username}", delete_contact, methods=["DELETE"]),
    Route("/api/blocks", list_blocks, methods=["GET"]),
    Route("/api/blocks/{username}", block, methods=["PUT", "DELETE"]),
]
