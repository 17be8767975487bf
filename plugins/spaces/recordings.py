"""Where a Space's recordings are written, stored and found again.

A take is written on the disk of the process that mixes the Space, one folder
per Space, one Ogg/Opus file per take:
``<data_dir>/<recordings_dir>/<space id>/<UTC start, %Y%m%dT%H%M%S>.ogg``.
It is written as ``….ogg.part`` and renamed when finished
(:class:`plugins.spaces.mixer.Recorder`), so listing ``*.ogg`` lists only whole
files (:class:`RecordingStore`).

A finished take is then *published* (:class:`RecordingLibrary`): stored on the
deployment's media backend as ``<space id>/<name>`` and recorded in
``spaces_recordings``, which every process of every host lists. The service
publishes a take in the background as soon as the recorder finishes it, and
what a stop or a crash left on the disk in the background after start-up.
On the local backend the folder above is the storage itself and the file
stays where it is; on the others the local copy is removed only once its row
is written, so a failure on the way never loses the only copy: the next
start of the process tries again. Listing only reads the rows.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import av
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from kernel import Database, MediaStorage, StoredFile, utcnow
from plugins.spaces.models import recordings

logger = logging.getLogger("everything.spaces")

NAME = re.compile(r"^(\d{8}T\d{6})(?:-(\d{1,3}))?\.ogg$")


@dataclass(frozen=True)
class Recording:
    """One finished take of a Space."""

    name: str
    started_at: datetime
    duration_seconds: float | None
    size: int


class RecordingStore:
    """The recordings of every Space under one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # Read a Space's folder again only when it changed (a take started, finished or was removed
        # changes the folder's mtime): a take's length is read from its file, which takes a moment.
        self._listed: dict[int, tuple[int, list[Recording]]] = {}

    def new_path(self, space_id: int, now: datetime, taken: Callable[[str], bool] = lambda name: False) -> Path:
        """A fresh file name for a take starting ``now`` (a second take within the same second gets a suffix);
        ``taken`` says whether a name is in use elsewhere (published, and gone from this disk)."""
        space_folder = self.folder / str(space_id)
        space_folder.mkdir(parents=True, exist_ok=True)
        stamp = now.strftime("%Y%m%dT%H%M%S")
        path = space_folder / f"{stamp}.ogg"
        counter = 1
        while path.exists() or path.with_name(path.name + ".part").exists() or taken(path.name):
            counter += 1
            path = space_folder / f"{stamp}-{counter}.ogg"
        return path

    def list(self, space_id: int) -> list[Recording]:
        """The Space's finished takes, oldest first."""
        space_folder = self.folder / str(space_id)
        try:
            changed = space_folder.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        listed = self._listed.get(space_id)
        if listed is not None and listed[0] == changed:
            return list(listed[1])
        found = []
        for path in sorted(space_folder.iterdir()):
            match = NAME.fullmatch(path.name)
            if match is None or not path.is_file():
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # published and removed by another process on this disk meanwhile
                continue
            found.append(
                Recording(
                    path.name,
                    datetime.strptime(match.group(1), "%Y%m%dT%H%M%S"),
                    _duration(str(path), stat.st_mtime_ns, stat.st_size),
                    stat.st_size,
                )
            )
        if time.time_ns() - changed > 2_000_000_000:  # a folder changed just now may change again within its mtime's grain
            self._listed[space_id] = (changed, found)
        return list(found)

    def remove_partial(self) -> int:
        """Delete the takes a crash left unfinished; how many."""
        removed = 0
        for partial in self.folder.glob("*/*.ogg.part"):
            partial.unlink(missing_ok=True)
            removed += 1
        return removed

    def path(self, space_id: int, name: str) -> Path | None:
        """The file of the take ``name`` of the Space, or None (an unknown or malformed name never leaves the folder)."""
        if NAME.fullmatch(name) is None:
            return None
        path = self.folder / str(space_id) / name
        return path if path.is_file() else None


class RecordingLibrary:
    """Every Space's takes: written into a :class:`RecordingStore`, published to the media storage, listed from the database."""

    def __init__(self, db: Database, storage: MediaStorage, folder: Path) -> None:
        self.db = db
        self.storage = storage
        # Where the mixer writes; on the local backend, the storage's own folder.
        self.takes = RecordingStore(folder)
        # One publisher at a time in this process: a finished take's and the start-up's must not store a take twice.
        self._publishing = threading.Lock()

    @property
    def folder(self) -> Path:
        return self.takes.folder

    def new_path(self, space_id: int, now: datetime) -> Path:
        """Where the take of ``space_id`` starting ``now`` is written, under a name no take of the Space has yet."""
        return self.takes.new_path(space_id, now, lambda name: self._row(space_id, name) is not None)

    def _row(self, space_id: int, name: str) -> Recording | None:
        query = select(recordings).where(recordings.c.space_id == space_id, recordings.c.name == name)
        row = self.db.read(lambda conn: conn.execute(query).first())
        return Recording(row.name, row.started_at, row.duration_seconds, row.size) if row is not None else None

    def _published(self, space_id: int) -> list[Recording]:
        query = select(recordings).where(recordings.c.space_id == space_id).order_by(recordings.c.started_at, recordings.c.id)
        rows = self.db.read(lambda conn: conn.execute(query).all())
        return [Recording(row.name, row.started_at, row.duration_seconds, row.size) for row in rows]

    def list(self, space_id: int) -> list[Recording]:
        """The Space's published takes, oldest first, from whichever process or host recorded them.

        Only reads (one indexed query): every ``spaces.state`` lists them, and publishing is the recorder's
        business (:meth:`publish`)."""
        return self._published(space_id)

    def publish(self, space_id: int, stop: threading.Event | None = None) -> int:
        """Store and record the Space's finished takes still on this disk; how many were published now.

        Each take goes: stored, then its row written, then (off the local backend) its local file removed.
        A failure leaves the local file for the next try; a row another process wrote first counts as done.
        Once ``stop`` is set no further take is begun (the process is stopping; the next start goes on).
        """
        published = 0
        with self._publishing:
            for take in self.takes.list(space_id):
                if stop is not None and stop.is_set():
                    break
                path = self.takes.folder / str(space_id) / take.name
                try:
                    if self._row(space_id, take.name) is None:
                        self.storage.put(f"{space_id}/{take.name}", path, "audio/ogg")
                        self._record(space_id, take)
                        published += 1
                    if self.storage.backend != "local":
                        path.unlink(missing_ok=True)
                except FileNotFoundError:
                    continue  # another process on this disk published it meanwhile
                except Exception:
                    logger.exception("spaces: could not publish the take %s of Space %s; it stays on this disk for the next try", take.name, space_id)
        return published

    def _record(self, space_id: int, take: Recording) -> None:
        values = {
            "space_id": space_id,
            "name": take.name,
            "started_at": take.started_at,
            "duration_seconds": take.duration_seconds,
            "size": take.size,
            "created_at": utcnow(),
        }
        try:
            self.db.write(lambda conn: conn.execute(insert(recordings).values(**values)))
        except IntegrityError:
            if self._row(space_id, take.name) is None:
                raise

    def publish_all(self, stop: threading.Event | None = None) -> int:
        """Publish every finished take on this disk (those a stop or a crash left before they were stored); how many.

        Once ``stop`` is set no further take is begun."""
        if not self.takes.folder.is_dir():
            return 0
        folders = [folder for folder in self.takes.folder.iterdir() if folder.is_dir() and folder.name.isdigit()]
        return sum(self.publish(int(folder.name), stop) for folder in folders)

    def find(self, space_id: int, name: str) -> StoredFile | None:
        """The stored file of the take ``name`` of the Space; None for a name that is not a published take."""
        if NAME.fullmatch(name) is None or self._row(space_id, name) is None:
            return None
        return self.storage.stat(f"{space_id}/{name}")

    def remove_partial(self) -> int:
        """Delete the takes a crash left unfinished; how many."""
        return self.takes.remove_partial()


@functools.lru_cache(maxsize=1024)
def _duration(path: str, mtime_ns: int, size: int) -> float | None:
    """The take's length in seconds (cached by file identity: a finished take never changes)."""
    try:
        with av.open(path) as container:
            return round(container.duration / 1_000_000, 1) if container.duration else None
    except (av.FFmpegError, OSError):
        return None
