"""Where feed media and Spaces recordings live: the local disk, the database, or S3-compatible storage.

``[media] storage`` picks one backend for the whole deployment; each plugin gets
its own :class:`MediaStorage` from :meth:`MediaStorages.for_plugin` (through
``Kernel.media_storage``); the web layer serves them (:func:`kernel.web.stored_files.media_response`).
docs/media-storage.md is the operator's guide.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from kernel.media_storage.base import MediaStorage, StoredFile, check_key
from kernel.media_storage.database import DatabaseStorage
from kernel.media_storage.local import LocalStorage
from kernel.settings import Settings
from kernel.storage.database import Database

__all__ = ["MediaStorage", "MediaStorages", "StoredFile"]


class MediaStorages:
    """The deployment's backend, handing one storage to each plugin that asks."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.backend = settings.media.storage
        self._client: Any = None
        self._lock = threading.Lock()

    def for_plugin(self, namespace: str, local_folder: Path | None = None) -> MediaStorage:
        """The storage of ``namespace`` (a plugin's name). On the local backend its files are under
        ``local_folder``, by default ``<data_dir>/media/<namespace>``; elsewhere that folder is unused."""
        check_key(namespace)
        media = self.settings.media
        if self.backend == "local":
            return LocalStorage(local_folder or self.settings.data_dir / "media" / namespace)
        # Uploads in progress wait on this host's disk before they go to the shared store.
        scratch = self.settings.data_dir / "media-scratch" / namespace
        if self.backend == "database":
            return DatabaseStorage(self.db, namespace, scratch)
        from kernel.media_storage.s3 import S3Storage

        assert media.s3.bucket is not None, "the settings require a bucket for s3"
        return S3Storage(self._s3_client(), media.s3.bucket, media.s3.prefix, namespace, scratch)

    def _s3_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from kernel.media_storage.s3 import make_client

                s3 = self.settings.media.s3
                secret = s3.secret_access_key.get_secret_value() if s3.secret_access_key is not None else None
                self._client = make_client(s3.endpoint_url, s3.region, s3.access_key_id, secret)
            return self._client
