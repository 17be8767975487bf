"""The database engine: SQLite (WAL) by default, PostgreSQL by URL.

Route code runs blocking database work in the thread pool through
:meth:`Database.transaction` and :meth:`Database.read`; measured here, a
synchronous SQLAlchemy connection in a worker thread beats an async driver
for SQLite.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, text
from sqlalchemy.pool import StaticPool

T = TypeVar("T")

# Threads that run blocking work for requests (anyio's default limiter is set to this at start).
DB_THREADS = 4


# PostgreSQL connections per process: kept open, and opened beyond those at busy moments. Small, so
# that several processes fit PostgreSQL's default max_connections of 100 ([database] pool_size).
POOL_SIZE = 5
MAX_OVERFLOW = 5


def make_engine(url: str, echo: bool = False, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW) -> Engine:
    """Create the engine for ``url`` with the connection settings the kernel relies on.

    ``pool_size`` and ``max_overflow`` size PostgreSQL's pool; SQLite's follows the worker threads.
    """
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if in_memory else None,
            # One connection per worker thread that may hold one: overflow
            # connections are closed on return, and reopening one runs the pragmas again.
            **({} if in_memory else {"pool_size": DB_THREADS, "max_overflow": 8}),
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Python's sqlite3 opens transactions lazily and only for DML;
            # take over so that BEGIN covers reads too and is IMMEDIATE for
            # writes (no "database is locked" on upgrade from read to write).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Connection) -> None:
            # Straight to the driver: exec_driver_sql would run SQLAlchemy's whole execute path for it.
            driver = connection.connection.driver_connection
            assert driver is not None  # a connection that begins is checked out of the pool, its driver's open
            driver.execute("BEGIN IMMEDIATE" if connection.info.get("write") else "BEGIN")

        return engine
    # No server-side prepared statements: after five runs psycopg prepares one, and PostgreSQL may
    # then switch to a generic plan that ignores the parameters' values — measured 40 ms instead of
    # 2 for a timeline (bench/timeline.py). Parsing each statement again costs far less.
    return create_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True, connect_args={"prepare_threshold": None}
    )


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key that a one-row ``INSERT`` gave its row: the table's ``id``.

    SQLAlchemy types ``inserted_primary_key`` as optional, for an insert of no rows.
    """
    key = result.inserted_primary_key
    assert key is not None, "inserted_id needs the result of a one-row insert"
    return key[0]


class Database:
    """The engine plus helpers that run blocking work off the event loop."""

    def __init__(self, url: str, echo: bool = False, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo, pool_size=pool_size, max_overflow=max_overflow)
        # SQLite has one writer at a time, and a writer that finds the file locked polls for it in
        # sleeps of 1, 2, 5, 10... ms (the busy handler), so the lock often sits free while they
        # sleep. This process's writers queue here instead and each is woken the moment the one
        # before it is done (bench/ledger.py, 8 threads: p99 110-140 ms without, 30-37 ms with,
        # and more transfers a second). BEGIN IMMEDIATE and the busy timeout still order writers
        # of other processes. Re-entrant: a write inside a write on the same thread fails on
        # SQLite's own lock after the busy timeout, as before, rather than hanging here for ever.
        self._write_turn: AbstractContextManager[Any] = threading.RLock() if self.is_sqlite else nullcontext()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction: committed whole, or rolled back."""
        # The turn is taken before the pool's connection: waiting writers hold none.
        with self._write_turn, self.engine.connect() as connection:
            connection.info["write"] = True
            try:
                with connection.begin():
                    return work(connection)
            finally:
                connection.info.pop("write", None)

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one read transaction."""
        with self.engine.connect() as connection:
            with connection.begin():
                return work(connection)

    async def awrite(self, work: Callable[[Connection], T]) -> T:
        """:meth:`write` in the thread pool."""
        return await anyio.to_thread.run_sync(self.write, work)

    async def aread(self, work: Callable[[Connection], T]) -> T:
        """:meth:`read` in the thread pool."""
        return await anyio.to_thread.run_sync(self.read, work)

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
