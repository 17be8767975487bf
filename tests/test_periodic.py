"""Periodic jobs run once per deployment: two real processes share one database, one of them runs each job.

Each process runs the kernel's :class:`kernel.Periodic` with the kernel's
:class:`kernel.JobLocks` on the same database (a PostgreSQL database, or an
SQLite file), and its job writes ``start``/``end`` lines with its pid to a
shared file. The lines say who ran the job and that runs never overlapped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# One process of a deployment: the job takes a while, so that two runs at once would show as interleaved lines.
PROCESS = """
import asyncio, os, signal, sys
from kernel import JobLocks, Periodic

url, runs = sys.argv[1], sys.argv[2]

def line(what):
    with open(runs, "a") as handle:
        handle.write(f"{what} {os.getpid()}\\n")

async def job():
    line("start")
    try:
        await asyncio.sleep(0.2)
    finally:
        line("end")

async def main():
    locks = JobLocks(url)
    periodic = Periodic("test-job", 0.05, job, locks=locks)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    periodic.start()
    line("up")
    await stopping.wait()
    await periodic.stop()
    locks.close()

asyncio.run(main())
"""


def lines(runs: Path) -> list[tuple[str, int]]:
    if not runs.exists():
        return []
    return [(what, int(pid)) for what, pid in (row.split() for row in runs.read_text().splitlines() if row.count(" ") == 1)]


def runners(runs: Path) -> list[int]:
    """The pids that started a run, in order."""
    return [pid for what, pid in lines(runs) if what == "start"]


def wait_until(condition: Callable[[], object], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def assert_never_overlapped(runs: Path) -> None:
    """Each ``start`` is followed by the ``end`` of the same process before any other ``start``."""
    running: int | None = None
    for what, pid in lines(runs):
        if what == "start":
            assert running is None, f"process {pid} started the job while process {running} was running it"
            running = pid
        elif what == "end":
            assert running == pid
            running = None


@pytest.fixture
def lock_url(tmp_path: Path, database_url: str | None) -> str:
    """The deployment's database: a PostgreSQL database of its own, or an SQLite file."""
    from kernel.settings import normalise_database_url

    return normalise_database_url(database_url) if database_url else f"sqlite:///{tmp_path / 'everything.db'}"


@contextmanager
def deployment_process(url: str, runs: Path) -> Iterator[subprocess.Popen[str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVERYTHING_")}
    process = subprocess.Popen([sys.executable, "-c", PROCESS, url, str(runs)], cwd=ROOT, env=env, text=True)
    try:
        wait_until(lambda: ("up", process.pid) in lines(runs) or process.poll() is not None, "the process is up")
        assert process.poll() is None, "the process exited at start"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def test_a_job_runs_in_one_process_at_a_time(tmp_path: Path, lock_url: str) -> None:
    runs = tmp_path / "runs"
    with ExitStack() as stack:
        first = stack.enter_context(deployment_process(lock_url, runs))
        second = stack.enter_context(deployment_process(lock_url, runs))
        wait_until(lambda: len(runners(runs)) >= 6, "the job ran six times")
        assert {first.pid, second.pid} >= set(runners(runs))
        assert len(set(runners(runs))) == 1, "the job ran in both processes"
    assert_never_overlapped(runs)


def test_another_process_takes_the_job_over_when_its_holder_is_killed(tmp_path: Path, lock_url: str) -> None:
    runs = tmp_path / "runs"
    with ExitStack() as stack:
        processes = {process.pid: process for process in (stack.enter_context(deployment_process(lock_url, runs)) for _ in range(2))}
        wait_until(lambda: len(runners(runs)) >= 2, "the job ran")
        holder = runners(runs)[0]
        other = next(pid for pid in processes if pid != holder)
        wait_until(lambda: lines(runs)[-1] == ("start", holder), "the holder is in the middle of a run")
        processes[holder].send_signal(signal.SIGKILL)
        processes[holder].wait(timeout=30)
        wait_until(lambda: runners(runs).count(other) >= 2, "the other process runs the job")
        assert set(runners(runs)) == {holder, other}
        taken_over = runners(runs).index(other)
        assert set(runners(runs)[taken_over:]) == {other}


def test_a_process_that_stops_hands_its_job_over(tmp_path: Path, lock_url: str) -> None:
    runs = tmp_path / "runs"
    with ExitStack() as stack:
        processes = {process.pid: process for process in (stack.enter_context(deployment_process(lock_url, runs)) for _ in range(2))}
        wait_until(lambda: len(runners(runs)) >= 1, "the job ran")
        holder = runners(runs)[0]
        other = next(pid for pid in processes if pid != holder)
        processes[holder].send_signal(signal.SIGTERM)
        assert processes[holder].wait(timeout=30) == 0
        wait_until(lambda: other in runners(runs), "the other process runs the job")
    assert_never_overlapped(runs)
