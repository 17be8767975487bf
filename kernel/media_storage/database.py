"""Files in the deployment's database: any host that reaches the database reaches the files, with no other service.

A file is a ``kernel_stored_files`` row and its bytes in ``CHUNK``-sized rows of
``kernel_stored_file_chunks``. An upload writes its chunks under a row without a key,
a few chunks per transaction, and names the row in one last transaction that also
drops the file it replaces: readers see the old file or the new one, never half of
one. Rows still without a key long after they began are a crashed upload's, and
:meth:`DatabaseStorage.sweep` removes them (each put sweeps now and then).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from kernel.media_storage.base import CHUNK, MediaStorage, StoredFile, check_key, sweep_folder
from kernel.storage.database import Database, inserted_id
from kernel.storage.models import stored_file_chunks as chunks
from kernel.storage.models import stored_files as files
from kernel.storage.models import utcnow

# Chunks written per transaction: short transactions, and SQLite's one writer is not held for a whole video.
CHUNKS_PER_WRITE = 4


class DatabaseStorage(MediaStorage):
    """One plugin's files in the database, keyed ``<namespace>/<key>``."""

    backend = "database"

    def __init__(self, db: Database, namespace: str, scratch: Path) -> None:
        self.db = db
        self.namespace = check_key(namespace)
        self._scratch = scratch

    def _name(self, key: str) -> str:
        return f"{self.namespace}/{check_key(key)}"

    def put(self, key: str, source: Path, content_type: str) -> StoredFile:
        name = self._name(key)
        self.sweep_now_and_then()
        now = utcnow()
        file_id = self.db.write(
            lambda conn: inserted_id(conn.execute(insert(files).values(key=None, content_type=content_type, size=0, created_at=now)))
        )
        try:
            size = self._write_chunks(file_id, source)
            self._name_it(file_id, name, size, content_type)
        except BaseException:
            self._drop(file_id)
            raise
        return StoredFile(key, size, content_type, _etag(file_id, size), now)

    def _write_chunks(self, file_id: int, source: Path) -> int:
        size = 0
        seq = 0
        with open(source, "rb") as handle:
            while True:
                batch = []
                for _ in range(CHUNKS_PER_WRITE):
                    piece = handle.read(CHUNK)
                    if not piece:
                        break
                    batch.append({"file_id": file_id, "seq": seq, "data": piece})
                    seq += 1
                    size += len(piece)
                if not batch:
                    return size
                self._write_batch(batch)

    def _write_batch(self, batch: list[dict[str, Any]]) -> None:
        self.db.write(lambda conn: conn.execute(insert(chunks), batch))

    def _name_it(self, file_id: int, name: str, size: int, content_type: str) -> None:
        def work(conn: Connection) -> None:
            old = conn.execute(select(files.c.id).where(files.c.key == name)).scalar()
            if old is not None:
                conn.execute(delete(chunks).where(chunks.c.file_id == old))
                conn.execute(delete(files).where(files.c.id == old))
            named = conn.execute(update(files).where(files.c.id == file_id, files.c.key.is_(None)).values(key=name, size=size, content_type=content_type))
            if named.rowcount != 1:
                raise RuntimeError(f"the upload of {name} was swept away before it finished")

        # Two processes storing one key at once: the later one finds the other's row and replaces it.
        for attempt in range(3):
            try:
                self.db.write(work)
                return
            except IntegrityError:
                if attempt == 2:
                    raise

    def _drop(self, file_id: int) -> None:
        def work(conn: Connection) -> None:
            conn.execute(delete(chunks).where(chunks.c.file_id == file_id))
            conn.execute(delete(files).where(files.c.id == file_id))

        self.db.write(work)

    def stat(self, key: str) -> StoredFile | None:
        name = self._name(key)
        row = self.db.read(lambda conn: conn.execute(select(files).where(files.c.key == name)).first())
        if row is None:
            return None
        return StoredFile(key, row.size, row.content_type, _etag(row.id, row.size), row.created_at)

    def read(self, key: str, start: int = 0, end: int | None = None, etag: str | None = None) -> Iterator[bytes]:
        name = self._name(key)
        row = self.db.read(lambda conn: conn.execute(select(files.c.id, files.c.size).where(files.c.key == name)).first())
        if row is None:
            raise FileNotFoundError(key)
        file_id, size = row.id, row.size
        if etag is not None and _etag(file_id, size) != etag:
            raise FileNotFoundError(f"{key} was replaced since it was looked up")
        stop = size if end is None else min(end, size)

        def pieces() -> Iterator[bytes]:
            # One short read per chunk: a slow client never holds a pooled connection between pieces.
            position = start
            while position < stop:
                seq, offset = divmod(position, CHUNK)
                data = self._chunk(file_id, seq)
                if data is None:
                    raise FileNotFoundError(f"{key} was replaced or deleted while being read")
                piece = bytes(data[offset : offset + (stop - position)])
                if not piece:
                    return
                position += len(piece)
                yield piece

        return pieces()

    def _chunk(self, file_id: int, seq: int) -> bytes | None:
        query = select(chunks.c.data).where(chunks.c.file_id == file_id, chunks.c.seq == seq)
        return self.db.read(lambda conn: conn.execute(query).scalar())

    def delete(self, key: str) -> None:
        name = self._name(key)

        def work(conn: Connection) -> None:
            found = conn.execute(select(files.c.id).where(files.c.key == name)).scalar()
            if found is not None:
                conn.execute(delete(chunks).where(chunks.c.file_id == found))
                conn.execute(delete(files).where(files.c.id == found))

        self.db.write(work)

    def scratch(self) -> Path:
        self._scratch.mkdir(parents=True, exist_ok=True)
        return self._scratch

    def sweep(self, older_than: timedelta) -> int:
        cutoff = utcnow() - older_than
        stale = self.db.read(lambda conn: conn.execute(select(files.c.id).where(files.c.key.is_(None), files.c.created_at < cutoff)).scalars().all())
        for file_id in stale:
            self._drop(file_id)
        # And this host's own leftovers: uploads a kill cut off before they reached the database.
        return len(stale) + sweep_folder(self._scratch, older_than)


def _etag(file_id: int, size: int) -> str:
    # A replaced file gets a new row, so its id is a strong validator of the bytes.
    return f'"db-{file_id:x}-{size:x}"'
