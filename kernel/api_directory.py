"""JSON API for the global address book: users, directory, follows, contacts, blocks."""

from __future__ import annotations

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.address_book import Page
from kernel.app import Kernel, get_kernel
from kernel.errors import ApiError, not_found
from kernel.http import JSONResponse, current_user, query_limit, read_json, require_user
from kernel.identity import User, check_text


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nickname: str = Field("", max_length=50)


async def find_user(kernel: Kernel, username: str) -> User:
    """The user by username in any case; 404 in the error shape when there is none."""
    user = await anyio.to_thread.run_sync(kernel.identity.user_by_username, username)
    if user is None:
        raise not_found(f"No user @{username}.")
    return user


async def users_page(kernel: Kernel, page: Page) -> Response:
    await kernel.prepare_users(page.results)
    return JSONResponse({"results": [kernel.user_json(user) for user in page.results], "next_cursor": page.next_cursor})


async def get_user(request: Request) -> Response:
    kernel = get_kernel(request)
    user = await find_user(kernel, request.path_params["username"])
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


async def follow_user(kernel: Kernel, follower: User, followee: User) -> None:
    """Follow, and tell the followed person when the follow is new (shared by the API and the profile page)."""
    if await anyio.to_thread.run_sync(kernel.address_book.follow, follower, followee):
        await kernel.notifications.notify(
            followee,
            "kernel.follow",
            f"{_name_of(follower)} followed you",
            url=f"/@{follower.username}",
            actor=follower,
        )


def _name_of(user: User) -> str:
    if user.display_name == user.username:
        return f"@{user.username}"
    return f"{user.display_name} (@{user.username})"


async def follow(request: Request) -> Response:
    user = require_user(request)
    kernel = get_kernel(request)
    other = await find_user(kernel, request.path_params["username"])
    if request.method == "PUT":
        await follow_user(kernel, user, other)
    else:
        await anyio.to_thread.run_sync(kernel.address_book.unfollow, user, other)
    updated = await anyio.to_thread.run_sync(kernel.identity.user_by_id, other.id)
    return JSONResponse(kernel.user_json(updated or other))


async def followers(request: Request) -> Response:
    return await _follow_list(request, "followers")


async def following(request: Request) -> Response:
    return await _follow_list(request, "following")


async def _follow_list(request: Request, which: str) -> Response:
    kernel = get_kernel(request)
    user = await find_user(kernel, request.path_params["username"])
    limit = query_limit(request)
    lister = kernel.address_book.followers if which == "followers" else kernel.address_book.following
    page = await anyio.to_thread.run_sync(lister, user, request.query_params.get("cursor"), limit)
    return await users_page(kernel, page)


async def list_contacts(request: Request) -> Response:
    user = require_user(request)
    kernel = get_kernel(request)
    page = await anyio.to_thread.run_sync(kernel.address_book.list_contacts, user, request.query_params.get("cursor"), query_limit(request))
    await kernel.prepare_users([item["user"] for item in page.results])
    results = [{"user": kernel.user_json(item["user"]), "nickname": item["nickname"], "added_at": item["added_at"]} for item in page.results]
    return JSONResponse({"results": results, "next_cursor": page.next_cursor})


async def put_contact(request: Request) -> Response:
    user = require_user(request)
    kernel = get_kernel(request)
    body = await read_json(request, ContactIn)
    other = await find_user(kernel, request.path_params["username"])
    result = await anyio.to_thread.run_sync(kernel.address_book.add_contact, user, other, body.nickname.strip())
    return JSONResponse(
        {"user": kernel.user_json(other), "nickname": result["nickname"]}, status_code=201 if result["created"] else 200
    )


async def delete_contact(request: Request) -> Response:
    user = require_user(request)
    kernel = get_kernel(request)
    other = await find_user(kernel, request.path_params["username"])
    await anyio.to_thread.run_sync(kernel.address_book.remove_contact, user, other)
    return Response(status_code=204)


async def list_blocks(request: Request) -> Response:
    user = require_user(request)
    kernel = get_kernel(request)
    page = await anyio.to_thread.run_sync(kernel.address_book.list_blocks, user, request.query_params.get("cursor"), query_limit(request))
    return await users_page(kernel, page)


async def block(request: Request) -> Response:
    user = require_user(request)
    kernel = get_kernel(request)
    other = await find_user(kernel, request.path_params["username"])
    if request.method == "PUT":
        await anyio.to_thread.run_sync(kernel.address_book.block, user, other)
    else:
        await anyio.to_thread.run_sync(kernel.address_book.unblock, user, other)
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
