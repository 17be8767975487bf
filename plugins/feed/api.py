"""The feed's JSON API under ``/api/feed/``."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import ApiError, JSONResponse, current_user, get_kernel, media_response, query_limit, read_json, require_user
from plugins.feed import actions
from plugins.feed.actions import feed_of
from plugins.feed.posts import MAX_ID


class PostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=200_000)
    reply_to: int | None = Field(default=None, gt=0, le=MAX_ID)
    quote_of: int | None = Field(default=None, gt=0, le=MAX_ID)
    media: list[int] = Field(default_factory=list, max_length=4)


async def create_post(request: Request) -> Response:
    """``POST /api/feed/posts`` {text, reply_to?, quote_of?, media?} → 201 post."""
    author = require_user(request)
    kernel = get_kernel(request)
    body = await read_json(request, PostIn)
    post = await actions.publish(kernel, author, body.text, body.reply_to, body.quote_of, body.media)
    return JSONResponse(post, status_code=201)


async def post(request: Request) -> Response:
    kernel = get_kernel(request)
    post_id = request.path_params["post_id"]
    if request.method == "DELETE":
        await anyio.to_thread.run_sync(feed_of(kernel).delete, require_user(request), post_id)
        return Response(status_code=204)
    return JSONResponse(await anyio.to_thread.run_sync(feed_of(kernel).get, current_user(request), post_id))


async def thread(request: Request) -> Response:
    kernel = get_kernel(request)
    answer = await anyio.to_thread.run_sync(
        feed_of(kernel).thread, current_user(request), request.path_params["post_id"], request.query_params.get("cursor"), query_limit(request)
    )
    return JSONResponse(answer)


async def like(request: Request) -> Response:
    viewer = require_user(request)
    kernel = get_kernel(request)
    on = request.method == "PUT"
    answer = await anyio.to_thread.run_sync(feed_of(kernel).like, viewer, request.path_params["post_id"], on)
    return JSONResponse(answer)


async def repost(request: Request) -> Response:
    viewer = require_user(request)
    kernel = get_kernel(request)
    answer, created = await actions.repost(kernel, viewer, request.path_params["post_id"])
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
    """``GET /feed/media/{id}``: the file, with its type, for as long as browsers like, in ranges for video.

    Served the same from every storage backend: ETag and Last-Modified, 304 to a current copy, one byte range.
    """
    kernel = get_kernel(request)
    library = feed_of(kernel).media
    found = await anyio.to_thread.run_sync(library.file, current_user(request), request.path_params["media_id"])
    if found is None:
        raise ApiError(404, "not_found", "There is no such file.")
    stored, mime = found
    headers = {"Cache-Control": "private, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff", "Content-Disposition": "inline"}
    return await media_response(request, library.storage, stored, mime, headers)


def _page(answer: Any) -> Response:
    return JSONResponse(answer.as_json())


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


async def by_cashtag(request: Request) -> Response:
    kernel = get_kernel(request)
    symbol = request.path_params["symbol"]
    answer = await anyio.to_thread.run_sync(
        feed_of(kernel).by_cashtag, current_user(request), symbol, request.query_params.get("cursor"), query_limit(request)
    )
    return _page(answer)


routes = [
    Route("/api/feed/posts", create_post, methods=["POST"]),
    Route("/api/feed/posts/{post_id:int}", post, methods=["GET", "DELETE"]),
    Route("/api/feed/posts/{post_id:int}/thread", thread, methods=["GET"]),
    Route("/api/feed/posts/{post_id:int}/like", like, methods=["PUT", "DELETE"]),
    Route("/api/feed/posts/{post_id:int}/repost", repost, methods=["POST"]),
    Route("/api/feed/media", upload, methods=["POST"]),
    Route("/feed/media/{media_id:int}", media_file, methods=["GET"]),
    Route("/api/feed/home", home, methods=["GET"]),
    Route("/api/feed/explore", explore, methods=["GET"]),
    Route("/api/feed/users/{username}", by_user, methods=["GET"]),
    Route("/api/feed/hashtags/{tag}", by_hashtag, methods=["GET"]),
    Route("/api/feed/cashtags/{symbol}", by_cashtag, methods=["GET"]),
]
