"""Where the feed keeps uploaded files: its storage from the kernel, on the deployment's media backend.

The kernel's ``[media] storage`` setting picks the backend (the local disk by
default, the database, or S3-compatible storage); the feed only names its files.
A file's row keeps its name (``abcdef….ext``); the storage holds it under
``ab/abcdef….ext``, so that no folder of the local disk grows past a few thousand files.
"""

from __future__ import annotations

from kernel import Kernel, MediaStorage


def feed_storage(kernel: Kernel) -> MediaStorage:
    """The feed's storage: ``<data_dir>/media/feed/`` on the local backend, as before there were others."""
    return kernel.media_storage("feed")


def file_key(storage_key: str) -> str:
    """Where the file named ``storage_key`` in a media row is in the feed's storage."""
    return f"{storage_key[:2]}/{storage_key}"
