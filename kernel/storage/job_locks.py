"""Locks that let one process of a deployment at a time run each periodic job.

On PostgreSQL a job's lock is a session-level advisory lock, taken on a
connection of its own (never the pool's: a pooled connection goes back to
the pool and its session with it). The process that takes a job's lock keeps
it while it lives; the others try at each of their runs and skip the run.
When the holder dies, even by ``kill -9``, its connection closes and
PostgreSQL releases the lock, so the next try elsewhere takes over.

On an SQLite file every process of the deployment is on one host, so the
lock is an ``flock`` on a file beside the database: released by the
operating system when the process dies. An in-memory database lives in
one process, which always holds every lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import threading
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

logger = logging.getLogger("everything.periodic")

# Seconds to wait for PostgreSQL when (re)connecting: a run that cannot ask is skipped, not stuck.
CONNECT_TIMEOUT = 5


def job_key(name: str) -> int:
    """The advisory lock key of job ``name``: a signed 64-bit number stable across processes and versions."""
    digest = hashlib.sha256(f"everything.job:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class JobLocks:
    """One process's holds on the deployment's job locks (``kernel.job_locks``).

    Thread-safe: jobs ask from the thread pool. Nothing is opened until the
    first :meth:`hold`.
    """

    def __init__(self, database_url: str) -> None:
        self.url = make_url(database_url)
        self._guard = threading.Lock()
        self._held: set[str] = set()
        self._connection: psycopg.Connection | None = None
        self._files: dict[str, int] = {}

    @property
    def kind(self) -> str:
        """``postgresql``, ``file`` (an SQLite file) or ``process`` (in-memory SQLite)."""
        if self.url.get_backend_name() == "postgresql":
            return "postgresql"
        return "file" if self.url.database not in (None, "", ":memory:") else "process"

    def hold(self, name: str) -> bool:
        """Take, or confirm that this process still has, job ``name``'s lock; False when another process has it.

        Blocking (one short query at most): call it off the event loop. A
        lost database connection is a False, and the next call connects again.
        """
        with self._guard:
            if self.kind == "postgresql":
                got = self._hold_advisory(name)
            elif self.kind == "file":
                got = self._hold_file(name)
            else:
                got = True
            if got and name not in self._held:
                logger.info("process %d now runs the periodic job %s", os.getpid(), name)
            if got:
                self._held.add(name)
            else:
                self._held.discard(name)
            return got

    def holds(self, name: str) -> bool:
        """Whether this process held job ``name``'s lock at its last :meth:`hold`."""
        return name in self._held

    def release(self, name: str) -> None:
        """Give job ``name``'s lock back, so that another process takes the job at its next run."""
        with self._guard:
            if name not in self._held:
                return
            self._held.discard(name)
            if self._connection is not None:
                with contextlib.suppress(psycopg.Error):
                    self._connection.execute("SELECT pg_advisory_unlock(%s)", (job_key(name),))
            fd = self._files.pop(name, None)
            if fd is not None:
                os.close(fd)  # closing the descriptor drops its flock

    def close(self) -> None:
        """Release every lock and close the connection (the process stops)."""
        with self._guard:
            self._held.clear()
            if self._connection is not None:
                with contextlib.suppress(psycopg.Error):
                    self._connection.close()
                self._connection = None
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()

    def _hold_advisory(self, name: str) -> bool:
        try:
            connection = self._connect()
            row = connection.execute("SELECT pg_try_advisory_lock(%s)", (job_key(name),)).fetchone()
            got = bool(row and row[0])
            if got and name in self._held:
                # Advisory locks stack within a session: keep one level, so that one unlock releases it.
                connection.execute("SELECT pg_advisory_unlock(%s)", (job_key(name),))
            return got
        except psycopg.Error as exc:
            # The session is gone and every lock it held with it: start again from nothing.
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            logger.warning("periodic job %s: cannot reach PostgreSQL for its lock (%s); skipping this run", name, detail)
            if self._connection is not None:
                with contextlib.suppress(psycopg.Error):
                    self._connection.close()
            self._connection = None
            self._held.clear()
            return False

    def _connect(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed:
            dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._connection = psycopg.connect(
                dsn,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                application_name="everything job locks",
                # A holder whose host vanishes without closing its socket is noticed by these probes.
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        return self._connection

    def _hold_file(self, name: str) -> bool:
        if name in self._files:
            return True
        database = Path(str(self.url.database)).resolve()
        path = database.with_name(f"{database.name}.job-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._files[name] = fd
        return True
