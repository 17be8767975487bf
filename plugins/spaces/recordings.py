"""Where a Space's recordings live and how they are found again: one folder per Space, one Ogg/Opus file per take.

``<data_dir>/<recordings_dir>/<space id>/<UTC start, %Y%m%dT%H%M%S>.ogg``.
A take is written as ``….ogg.part`` and renamed when finished
(:class:`plugins.spaces.mixer.Recorder`), so listing ``*.ogg`` lists only
whole files. A folder per Space keeps listing one Space's takes a look
into a small folder, whatever the number of Spaces.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import av

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
        # Every spaces.state lists the takes: read a Space's folder again only when it changed (a take
        # started, finished or was removed changes the folder's mtime), not on every join and mute.
        self._listed: dict[int, tuple[int, list[Recording]]] = {}

    def new_path(self, space_id: int, now: datetime) -> Path:
        """A fresh file name for a take starting ``now`` (a second take within the same second gets a suffix)."""
        space_folder = self.folder / str(space_id)
        space_folder.mkdir(parents=True, exist_ok=True)
        stamp = now.strftime("%Y%m%dT%H%M%S")
        path = space_folder / f"{stamp}.ogg"
        counter = 1
        while path.exists() or path.with_name(path.name + ".part").exists():
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
            stat = path.stat()
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


@functools.lru_cache(maxsize=1024)
def _duration(path: str, mtime_ns: int, size: int) -> float | None:
    """The take's length in seconds (cached by file identity: a finished take never changes)."""
    try:
        with av.open(path) as container:
            return round(container.duration / 1_000_000, 1) if container.duration else None
    except (av.FFmpegError, OSError):
        return None
