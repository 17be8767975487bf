"""Attachments: images and videos, their type read from their content, their size and length measured by PyAV.

An upload is written to a scratch file on this host, sniffed, probed, checked
against the limits, recorded, then put into the deployment's storage (moved on
the local disk, copied to the database or a bucket); the scratch file goes
whatever happens, and the row of a file that could not be stored is deleted
again, so a refused upload leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, delete, insert, select, update

from kernel import ApiError, Kernel, MediaStorage, StoredFile, User, iso, utcnow
from plugins.feed.models import media
from plugins.feed.storage import file_key

logger = logging.getLogger("everything.feed")

LONGVIDEO = "feed.longvideo"
MAX_ID = 2**31 - 1  # the largest id a row can have; larger ones must not reach the database
CHUNK = 1 << 20


@dataclass(frozen=True)
class Kind:
    kind: str  # "image" or "video"
    mime: str
    extension: str


def sniff(head: bytes) -> Kind | None:
    """The file's type from its first bytes, whatever its name or declared type says."""
    if head.startswith(b"\xff\xd8\xff"):
        return Kind("image", "image/jpeg", "jpg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Kind("image", "image/png", "png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Kind("image", "image/gif", "gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Kind("image", "image/webp", "webp")
    if head[4:8] == b"ftyp":
        return Kind("video", "video/mp4", "mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]:
        return Kind("video", "video/webm", "webm")
    return None


@dataclass(frozen=True)
class Probe:
    width: int
    height: int
    duration: float | None


def probe(path: Path, kind: Kind) -> Probe:
    """Dimensions (and a video's duration) read by decoding the container's headers; 422 when it isn't what it claims."""
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.video
            if not streams:
                raise ValueError("no picture in it")
            stream = streams[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if kind.kind == "image" and not width:
                # Some image demuxers learn the size only from the first frame.
                frame = next(container.decode(video=0))
                width, height = frame.width, frame.height
            duration = None
            if kind.kind == "video":
                if container.duration is not None:
                    duration = container.duration / 1_000_000
                elif stream.duration is not None and stream.time_base is not None:
                    duration = float(stream.duration * stream.time_base)
                else:
                    raise ValueError("no duration")
    except (av.FFmpegError, ValueError, StopIteration, OSError):
        raise ApiError(422, "unsupported_media", f"file: this is not a readable {kind.kind}", field="file") from None
    if not width or not height:
        raise ApiError(422, "unsupported_media", f"file: this is not a readable {kind.kind}", field="file")
    return Probe(width, height, duration)


class MediaLibrary:
    """Uploads of one deployment's feed."""

    def __init__(self, kernel: Kernel, storage: MediaStorage, limits: Any) -> None:
        self.kernel = kernel
        self.db = kernel.db
        self.storage = storage
        self.limits = limits

    def upload(self, owner: User, source: BinaryIO) -> dict[str, Any]:
        """Store an upload for ``owner``; refused (4xx) with nothing left behind when it isn't an allowed file."""
        fd, name = tempfile.mkstemp(dir=self.storage.scratch(), prefix="upload-")
        scratch = Path(name)
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > self.limits.max_video_bytes:
                        raise ApiError(413, "payload_too_large", f"file: at most {self.limits.max_video_bytes // 1_000_000} MB")
                    out.write(chunk)
            with open(scratch, "rb") as check:
                kind = sniff(check.read(64))
            if kind is None:
                raise ApiError(415, "unsupported_media_type", "file: send a JPEG, PNG, WebP or GIF image, or an MP4 or WebM video", field="file")
            if kind.kind == "image" and size > self.limits.max_image_bytes:
                raise ApiError(413, "payload_too_large", f"file: images may be at most {self.limits.max_image_bytes // 1_000_000} MB", field="file")
            found = probe(scratch, kind)
            if kind.kind == "video" and (
                size > self.limits.free_video_bytes or (found.duration or 0) > self.limits.free_video_seconds
            ):
                self.kernel.entitlements.require(owner, LONGVIDEO)
            key = f"{secrets.token_hex(16)}.{kind.extension}"
            values = {
                "owner_id": owner.id, "post_id": None, "kind": kind.kind, "mime": kind.mime, "size": size,
                "width": found.width, "height": found.height, "duration": found.duration, "storage_key": key, "created_at": utcnow(),
            }
            # The row first: a process dying before the file is stored leaves a row without its file (its owner's
            # alone, answered 404), never stored bytes that no row names and nothing would ever delete.
            media_id = self.db.write(lambda conn: conn.execute(insert(media).values(**values).returning(media.c.id)).scalar_one())
            try:
                self.storage.put(file_key(key), scratch, kind.mime)
            except BaseException as failure:
                self.db.write(lambda conn: conn.execute(delete(media).where(media.c.id == media_id)))
                if isinstance(failure, Exception):
                    logger.exception("feed: storing an upload in the %s storage failed", self.storage.backend)
                    raise ApiError(503, "storage_unavailable", "The file could not be stored just now; try again.") from None
                raise
        finally:
            scratch.unlink(missing_ok=True)
        return self.as_json({**values, "id": media_id})

    @staticmethod
    def as_json(row: Any) -> dict[str, Any]:
        return {
            "id": row["id"],
            "kind": row["kind"],
            "mime": row["mime"],
            "size": row["size"],
            "width": row["width"],
            "height": row["height"],
            "duration": round(row["duration"], 3) if row["duration"] is not None else None,
            "url": f"/feed/media/{row['id']}",
            "created_at": iso(row["created_at"]),
        }

    def attach(self, conn: Connection, owner: User, post_id: int, ids: list[int]) -> None:
        """Attach the owner's unattached uploads to a new post, inside its transaction: up to 4 images, or one video."""
        if not ids:
            return
        if len(set(ids)) != len(ids):
            raise ApiError(422, "validation_error", "media: each attachment once", field="media")
        rows = conn.execute(select(media).where(media.c.id.in_(ids), media.c.owner_id == owner.id, media.c.post_id.is_(None))).all()
        if len(rows) != len(ids):
            raise ApiError(422, "unknown_media", "media: upload the files first; each may be attached to one post", field="media")
        if any(row.kind == "video" for row in rows) and len(rows) > 1:
            raise ApiError(422, "validation_error", "media: a video goes alone in its post", field="media")
        conn.execute(update(media).where(media.c.id.in_(ids)).values(post_id=post_id))

    def of_posts(self, post_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """Each post's attachments, in upload order."""
        if not post_ids:
            return {}
        query = select(media).where(media.c.post_id.in_(post_ids)).order_by(media.c.id)
        rows = self.db.read(lambda conn: conn.execute(query).all())
        found: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            found.setdefault(row.post_id, []).append(self.as_json(row._mapping))
        return found

    def file(self, viewer: User | None, media_id: int) -> tuple[StoredFile, str] | None:
        """The stored file and its type; None when it is gone. An upload not yet in a post is its owner's alone; None for anyone else."""
        if not 0 < media_id <= MAX_ID:
            return None
        row = self.db.read(lambda conn: conn.execute(select(media).where(media.c.id == media_id)).first())
        if row is None or (row.post_id is None and (viewer is None or viewer.id != row.owner_id)):
            return None
        stored = self.storage.stat(file_key(row.storage_key))
        return (stored, row.mime) if stored is not None else None

    def remove_for_post(self, post_id: int) -> None:
        """Delete a deleted post's files and their rows."""
        rows = self.db.read(lambda conn: conn.execute(select(media.c.id, media.c.storage_key).where(media.c.post_id == post_id)).all())
        if rows:
            self.db.write(lambda conn: conn.execute(delete(media).where(media.c.post_id == post_id)))
            for row in rows:
                self.storage.delete(file_key(row.storage_key))
