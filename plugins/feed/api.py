"""The feed's JSON API under ``/api/feed/``."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from kernel import ApiError, JSONResponse, Kernel, User, current_user, get_kernel, query_limit, read_json, require_user
from plugins.feed.posts import Feed, Written

MAX_ID = 2**31 - 1


class PostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=200_000)
    reply_to: int | None = Field(None, gt=0, le=MAX_ID)
    quote_of: int | None = Field(None, gt=0, le=MAX_ID)
    media: list[int] = Field(default_factory=list, max_length=4)


def feed_of(kernel: Kernel) -> Feed:
    return kernel.__dict__["feed"]


def _post_id(request: Request) -> int:
    try:
        post_id = int(request.path_params["post_id"])
    except ValueError:
        post_id = 0
    if not 0 < post_id <= MAX_ID:
        raise ApiError(404, "not_found", "This post doesn't exist, or was deleted.")
    return post_id


async def tell(kernel: Kernel, author: User, written: Written) -> None:
    """Notifications for a new post: the people it mentions, the author it answers or quotes."""
    post = written.post
    url = f"/feed/posts/{post['id']}"
    name = f"@{author.username}"
    told: set[int] = set()
    if written.replied_to is not None:
        await kernel.notifications.notify(written.replied_to, "feed.reply", f"{name} replied to your post", url=url, actor=author)
        told.add(written.replied_to.id)
    if written.quoted is not None and written.quoted.id not in told:
        await kernel.notifications.notify(written.quoted, "feed.quote", f"{name} quoted your post", url=url, actor=author)
        told.add(written.quoted.id)
    for user in written.mentioned:
        if user.id not in told:
            await kernel.notifications.notify(user, "feed.mention", f"{name} mentioned you", url=url, actor=author)


async def tell_repost(kernel: Kernel, reposter: User, original: dict[str, Any]) -> None:
    """Tell a post's author that someone reposted it (shared by the API and the page)."""
    author = await anyio.to_thread.run_sync(kernel.user, original["author"]["username"])
    if author is not None and author.id != reposter.id:
        url = f"/feed/posts/{original['id']}"
        await kernel.notifications.notify(author, "feed.repost", f"@{reposter.username} reposted your post", url=url, actor=reposter)


async def announce(kernel: Kernel, author: User, post: dict[str, Any]) -> None:
    """Tell the author's followers' open home timelines that there is something new (the "N new posts" bar)."""
    message = {"type": "feed.new_post", "post_id": post["id"], "author": author.username}
    # One message per follower: cheap in one process, and what a bus can route. An account with
    # millions of followers would want a topic per author instead (docs/feed.md).
    for follower_id in await anyio.to_thread.run_sync(kernel.follower_ids, author):
        await kernel.realtime.send_to_user(follower_id, message)


async def create_post(request: Request) -> Response:
    """``POST /api/feed/posts`` {text, reply_to?, quote_of?, media?} → 201 post."""
    author = require_user(request)
    kernel = get_kernel(request)
    body = await read_json(request, PostIn)
    written = await anyio.to_thread.run_sync(feed_of(kernel).create, author, body.text, body.reply_to, body.quote_of, body.media)
    await tell(kernel, author, written)
    await announce(kernel, author, written.post)
    return JSONResponse(written.post, status_code=201)


async def post(request: Request) -> Response:
    kernel = get_kernel(request)
    post_id = _post_id(request)
    if request.method == "DELETE":
        await anyio.to_thread.run_sync(feed_of(kernel).delete, require_user(request), post_id)
        return Response(status_code=204)
    return JSONResponse(await anyio.to_thread.run_sync(feed_of(kernel).get, current_user(request), post_id))


async def thread(request: Request) -> Response:
    kernel = get_kernel(request)
    answer = await anyio.to_thread.run_sync(
        feed_of(kernel).thread, current_user(request), _post_id(request), request.query_params.get("cursor"), query_limit(request)
    )
    return JSONResponse(answer)


async def like(request: Request) -> Response:
    viewer = require_user(request)
    kernel = get_kernel(request)
    on = request.method == "PUT"
    answer = await anyio.to_thread.run_sync(feed_of(kernel).like, viewer, _post_id(request), on)
    return JSONResponse(answer)


async def repost(request: Request) -> Response:
    viewer = require_user(request)
    kernel = get_kernel(request)
    answer, created = await anyio.to_thread.run_sync(feed_of(kernel).repost, viewer, _post_id(request))
    if created and answer["repost_of"] and answer["repost_of"].get("author"):
        await tell_repost(kernel, viewer, answer["repost_of"])
    return JSONResponse(answer, status_code=201 if created else 200)


async def upload(request: Request) -> Response:
    """``POST /api/feed/media`` (multipart, field ``file``) → 201 {id, kind, mime, size, width, height, duration, url}."""
    owner = require_user(request)
    kernel = get_kernel(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "Send the file as multipart/form-data, in a field named file.")
    async with request.form(max_files=1, max_fields=5) as form:
        upload_file = form.get("file")
        if not isinstance(upload_file, UploadFile):
            raise ApiError(422, "validation_error", "file: attach one file", field="file")
        answer = await anyio.to_thread.run_sync(feed_of(kernel).media.upload, owner, upload_file.file)
    return JSONResponse(answer, status_code=201)


async def media_file(request: Request) -> Response:
    """``GET /feed/media/{id}``: the file, with its type, for as long as browsers like, in ranges for video."""
    kernel = get_kernel(request)
    try:
        media_id = int(request.path_params["media_id"])
    except ValueError:
        media_id = 0
    found = await anyio.to_thread.run_sync(feed_of(kernel).media.file, current_user(request), media_id) if 0 < media_id <= MAX_ID else None
    if found is None or not found[0].exists():
        raise ApiError(404, "not_found", "There is no such file.")
    path, mime = found
    headers = {"Cache-Control": "private, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff", "Content-Disposition": "inline"}
    return FileResponse(path, media_type=mime, headers=headers)


def _page(answer: Any) -> Response:
    return JSONResponse({"results": answer.results, "next_cursor": answer.next_cursor})


async def home(request: Request) -> Response:
    viewer = require_user(request)
    kernel = get_kernel(request)
    return _page(await anyio.to_thread.run_sync(feed_of(kernel).home, viewer, request.query_params.get("cursor"), query_limit(request)))


async def explore(request: Request) -> Response:
    kernel = get_kernel(request)
    answer = await anyio.to_thread.run_sync(feed_of(kernel).explore, current_user(request), request.query_params.get("cursor"), query_limit(request))
    return _page(answer)


async def by_user(request: Request) -> Response:
    kernel = get_kernel(request)
    author = await anyio.to_thread.run_sync(kernel.user, request.path_params["username"])
    if author is None:
        raise ApiError(404, "not_found", f"No user @{request.path_params['username']}.")
    with_replies = request.query_params.get("replies") in ("1", "true")
    answer = await anyio.to_thread.run_sync(
        feed_of(kernel).by_user, current_user(request), author, request.query_params.get("cursor"), query_limit(request), with_replies
    )
    return _page(answer)


async def by_hashtag(request: Request) -> Response:
    kernel = get_kernel(request)
    tag = request.path_params["tag"]
    answer = await anyio.to_thread.run_sync(feed_of(kernel).by_hashtag, current_user(request), tag, request.query_params.get("cursor"), query_limit(request))
    return _page(answer)


routes = [
    Route("/api/feed/posts", create_post, methods=["POST"]),
    Route("/api/feed/posts/{post_id}", post, methods=["GET", "DELETE"]),
    Route("/api/feed/posts/{post_id}/thread", thread, methods=["GET"]),
    Route("/api/feed/posts/{post_id}/like", like, methods=["PUT", "DELETE"]),
    Route("/api/feed/posts/{post_id}/repost", repost, methods=["POST"]),
    Route("/api/feed/media", upload, methods=["POST"]),
    Route("/feed/media/{media_id}", media_file, methods=["GET"]),
    Route("/api/feed/home", home, methods=["GET"]),
    Route("/api/feed/explore", explore, methods=["GET"]),
    Route("/api/feed/users/{username}", by_user, methods=["GET"]),
    Route("/api/feed/hashtags/{tag}", by_hashtag, methods=["GET"]),
]
