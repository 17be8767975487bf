"""Where the feed keeps uploaded files: an interface, and the embedded default on the local disk."""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path


class MediaStorage(ABC):
    """Files by key. A deployment that outgrows one disk implements this over object storage."""

    @abstractmethod
    def put(self, key: str, source: Path) -> None:
        """Take the file at ``source`` (moved, not copied, where the storage can) as ``key``."""

    @abstractmethod
    def path(self, key: str) -> Path:
        """A local path to serve ``key`` from."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Forget ``key``; no error when it is already gone."""

    @abstractmethod
    def scratch(self) -> Path:
        """A folder for uploads in progress, on the same disk so that ``put`` is a rename."""


class LocalStorage(MediaStorage):
    """Files under the deployment's data folder: ``<data_dir>/media/feed/ab/abcdef….ext``."""

    def __init__(self, root: Path) -> None:
        # Folders are made on first use: commands that only look create nothing.
        self.root = root

    def _file(self, key: str) -> Path:
        if "/" in key or "\\" in key or key.startswith("."):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key[:2] / key

    def put(self, key: str, source: Path) -> None:
        target = self._file(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)

    def path(self, key: str) -> Path:
        return self._file(key)

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._file(key))
        except FileNotFoundError:
            pass

    def scratch(self) -> Path:
        folder = self.root / "incoming"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
