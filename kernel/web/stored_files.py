"""Serving a stored file over HTTP, the same on every backend: validators, conditional requests and one byte range."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC
from email.utils import format_datetime

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from kernel.errors import ApiError
from kernel.media_storage.base import MediaStorage, StoredFile

RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """The one range ``header`` asks for, as ``(start, end exclusive)``; None to send the whole file
    (no header, several ranges or one that does not parse, which RFC 9110 lets a server ignore);
    False when it cannot be satisfied."""
    if not header:
        return None
    match = RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        return (max(size - length, 0), size) if length > 0 and size > 0 else False
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None
    return (start, end) if start < size else False


def _matches(header: str, etag: str) -> bool:
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


async def media_response(
    request: Request, storage: MediaStorage, stored: StoredFile, media_type: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The response for ``GET``/``HEAD`` of ``stored``: 304 when the client's copy is current, 206 for
    one satisfiable ``Range``, 416 for an unsatisfiable one, else the whole file, streamed."""
    common = {
        **(headers or {}),
        "ETag": stored.etag,
        "Last-Modified": format_datetime(stored.modified.replace(tzinfo=UTC), usegmt=True),
        "Accept-Ranges": "bytes",
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and _matches(if_none_match, stored.etag):
        return Response(status_code=304, headers=common)
    wanted = byte_range(request.headers.get("range"), stored.size)
    if_range = request.headers.get("if-range")
    if wanted is not None and if_range and if_range.strip() != stored.etag:
        wanted = None  # the client's part is of another version: it gets the whole new one
    if wanted is False:
        return Response(status_code=416, headers={**common, "Content-Range": f"bytes */{stored.size}"})
    status = 200
    start, end = 0, stored.size
    if isinstance(wanted, tuple):
        status, (start, end) = 206, wanted
        common["Content-Range"] = f"bytes {start}-{end - 1}/{stored.size}"
    common["Content-Length"] = str(end - start)
    if request.method == "HEAD" or start == end:
        return Response(status_code=status, headers=common, media_type=media_type)
    try:
        # Only the version looked up: its length and validator are in the headers already.
        pieces = await anyio.to_thread.run_sync(storage.read, stored.key, start, end, stored.etag)
    except FileNotFoundError:  # deleted or replaced since it was looked up
        raise ApiError(404, "not_found", "There is no such file.") from None
    # StreamingResponse draws each piece from the thread pool: no storage call blocks the event loop.
    return StreamingResponse(pieces, status_code=status, headers=common, media_type=media_type)
