"""The embedded backend: files under a folder of the data directory."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kernel.media_storage.base import CHUNK, MediaStorage, StoredFile, check_key, sweep_folder

INCOMING = "incoming"


class LocalStorage(MediaStorage):
    """``<root>/<key>``; uploads in progress under ``<root>/incoming`` so that storing one is a rename."""

    backend = "local"

    def __init__(self, root: Path) -> None:
        # Folders are made on first use: commands that only look create nothing.
        self.root = root

    def _file(self, key: str) -> Path:
        check_key(key)
        if key.split("/", 1)[0] == INCOMING:
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key

    def put(self, key: str, source: Path, content_type: str) -> StoredFile:
        target = self._file(key)
        self.sweep_now_and_then()
        if source.resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            # A copy from another disk lands beside the target first, so that the key only ever names a whole file.
            partial = target.with_name(f".{target.name}.part")
            shutil.move(source, partial)
            os.replace(partial, target)
        found = self.stat(key)
        assert found is not None, "a file just stored is there"
        return found

    def stat(self, key: str) -> StoredFile | None:
        try:
            info = self._file(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        modified = datetime.fromtimestamp(info.st_mtime, UTC).replace(tzinfo=None)
        return StoredFile(key, info.st_size, "application/octet-stream", _etag(info), modified)

    def read(self, key: str, start: int = 0, end: int | None = None, etag: str | None = None) -> Iterator[bytes]:
        handle = open(self._file(key), "rb")  # raises FileNotFoundError before the first piece is asked for
        # A put replaces the file by a rename: the open handle is of one version, whose identity fstat tells.
        if etag is not None and _etag(os.fstat(handle.fileno())) != etag:
            handle.close()
            raise FileNotFoundError(f"{key} was replaced since it was looked up")

        def pieces() -> Iterator[bytes]:
            with handle:
                handle.seek(start)
                left = None if end is None else end - start
                while left is None or left > 0:
                    piece = handle.read(CHUNK if left is None else min(CHUNK, left))
                    if not piece:
                        return
                    if left is not None:
                        left -= len(piece)
                    yield piece

        return pieces()

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._file(key))
        except FileNotFoundError:
            pass

    def scratch(self) -> Path:
        folder = self.root / INCOMING
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def sweep(self, older_than: timedelta) -> int:
        return sweep_folder(self.root / INCOMING, older_than)


def _etag(info: os.stat_result) -> str:
    return f'"{info.st_size:x}-{info.st_mtime_ns:x}"'
