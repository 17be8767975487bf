"""The interface every media backend implements: files by key, read whole or in byte ranges.

Keys are relative paths of plain segments (``ab/abcdef.jpg``, ``7/20261121T120000.ogg``);
each plugin gets a storage of its own (:meth:`kernel.app.Kernel.media_storage`), so keys
never meet another plugin's. Every method blocks: call them from the thread pool.
"""

from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

logger = logging.getLogger("everything.media")
# The size of the pieces a read yields, and of the database backend's stored chunks.
CHUNK = 1 << 20
# Each storage sweeps away abandoned uploads when it stores a file, at most this often.
SWEEP_EVERY_SECONDS = 600.0
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
MAX_KEY = 300


def sweep_folder(folder: Path, older_than: timedelta) -> int:
    """Delete the files in ``folder`` last written over ``older_than`` ago (uploads a crash cut off); how many."""
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than.total_seconds()
    removed = 0
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # finished (moved away) or swept by another process meanwhile
            pass
    return removed


def check_key(key: str) -> str:
    """``key`` when it is a storage key; ValueError otherwise (nothing may climb out of a plugin's storage)."""
    if not key or len(key) > MAX_KEY or not all(SEGMENT.fullmatch(part) for part in key.split("/")):
        raise ValueError(f"not a storage key: {key!r}")
    return key


@dataclass(frozen=True)
class StoredFile:
    """What a backend knows of one stored file."""

    key: str
    size: int
    content_type: str
    # A strong validator, quoted as an HTTP ETag: it changes whenever the bytes under the key may have.
    etag: str
    # UTC, without tzinfo.
    modified: datetime


class MediaStorage(ABC):
    """Files by key for one plugin: the local disk, the database or S3-compatible object storage."""

    # "local", "database" or "s3": what ``[media] storage`` named.
    backend: str
    # An upload unfinished this long after it began was abandoned (a crash, a client gone).
    abandoned_after = timedelta(hours=1)
    _last_sweep = float("-inf")

    @abstractmethod
    def put(self, key: str, source: Path, content_type: str) -> StoredFile:
        """Store the file at ``source`` as ``key``, replacing what was there.

        The source is moved where the backend can (the local disk, when it is on the same
        disk); elsewhere it is copied and left in place, and the caller removes it. Only a
        whole file is ever visible under ``key``: a failed put leaves the old one or none.
        """

    @abstractmethod
    def stat(self, key: str) -> StoredFile | None:
        """The file's size, type and validator; None when there is none."""

    @abstractmethod
    def read(self, key: str, start: int = 0, end: int | None = None, etag: str | None = None) -> Iterator[bytes]:
        """The bytes ``start`` (inclusive) to ``end`` (exclusive, None for the end), in pieces.

        ``etag`` (a :attr:`StoredFile.etag` from :meth:`stat`) asks for that version only: a file
        replaced since it was looked up is not read, so that its bytes never go out under the old
        one's length and validator.

        :raises FileNotFoundError: when there is no such file (or not of the version ``etag`` names).
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Forget ``key``; no error when it is already gone."""

    @abstractmethod
    def scratch(self) -> Path:
        """A local folder for uploads in progress (on the storage's own disk for the local backend)."""

    @abstractmethod
    def sweep(self, older_than: timedelta) -> int:
        """Remove uploads that began over ``older_than`` ago and never finished (a crash mid-upload); how many."""

    def sweep_now_and_then(self) -> None:
        """:meth:`sweep` uploads abandoned over :attr:`abandoned_after` ago, unless this storage did within the last minutes.

        Called by each ``put``: a deployment that stores files cleans up after itself with no job of its own.
        A failed sweep is logged; the upload that called it goes on.
        """
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_EVERY_SECONDS:
            return
        self._last_sweep = now
        try:
            removed = self.sweep(self.abandoned_after)
        except Exception:
            logger.exception("media: sweeping abandoned uploads of the %s storage failed", self.backend)
            return
        if removed:
            logger.info("media: removed %d abandoned upload(s) from the %s storage", removed, self.backend)

    def exists(self, key: str) -> bool:
        """Whether a whole file is stored under ``key``."""
        return self.stat(key) is not None

    def read_bytes(self, key: str) -> bytes:
        """The whole file, in memory: for small files only.

        :raises FileNotFoundError: when there is no such file.
        """
        return b"".join(self.read(key))
