"""Where takes live: whole files only, names that never leave a Space's folder, and what a crash leaves behind."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from plugins.spaces.mixer import SAMPLES, Mixer
from plugins.spaces.recordings import RecordingStore

NOON = datetime(2026, 11, 21, 12, 0, 0)


def test_a_take_is_named_after_its_start_and_a_second_one_in_the_same_second_gets_a_suffix(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path)
    first = store.new_path(7, NOON)
    first.write_bytes(b"x")
    second = store.new_path(7, NOON)
    assert (first.name, second.name) == ("20261121T120000.ogg", "20261121T120000-2.ogg")
    assert first.parent == second.parent == tmp_path / "7"


def test_an_unfinished_take_is_neither_listed_nor_served(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path)
    path = store.new_path(7, NOON)
    path.with_name(path.name + ".part").write_bytes(b"half")
    assert store.list(7) == []
    assert store.path(7, path.name) is None and store.path(7, path.name + ".part") is None


def test_a_name_never_leaves_the_spaces_folder(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path)
    (tmp_path / "8").mkdir()
    (tmp_path / "8" / "20261121T120000.ogg").write_bytes(b"another space's")
    (tmp_path / "secret.ogg").write_bytes(b"not a take")
    for name in ("../8/20261121T120000.ogg", "../secret.ogg", "20261121T120000.ogg\n", "/etc/passwd"):
        assert store.path(7, name) is None


def test_a_finished_take_is_listed_with_its_start(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path)
    store.new_path(7, NOON).write_bytes(b"not really audio")
    [take] = store.list(7)
    assert (take.name, take.started_at, take.size) == ("20261121T120000.ogg", NOON, 16)
    assert take.duration_seconds is None  # not audio: no length, and no error


def test_unfinished_takes_are_removed_after_a_crash(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path)
    kept = store.new_path(7, NOON)
    kept.write_bytes(b"whole")
    kept.with_name("20261121T130000.ogg.part").write_bytes(b"half")
    assert store.remove_partial() == 1
    assert [p.name for p in (tmp_path / "7").iterdir()] == [kept.name]


def test_the_mixer_hands_over_each_take_once_it_is_whole_under_its_name(tmp_path: Path) -> None:
    """What the media backend tells the service, which then publishes the take."""
    mixer = Mixer()
    path = RecordingStore(tmp_path).new_path(7, NOON)
    mixer.start_recording(path)
    for _ in range(5):
        mixer.tick({1: np.zeros(SAMPLES, dtype=np.int16)})
    assert mixer.take_finished() == []  # still being written, as .part
    mixer.stop_recording()
    assert mixer.take_finished() == [path] and path.is_file()
    assert mixer.take_finished() == []
