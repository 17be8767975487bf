"""A job a plugin runs now and then while the app serves (billing looks, interest, order matching), once per deployment."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread

if TYPE_CHECKING:
    from kernel.storage.job_locks import JobLocks

logger = logging.getLogger("everything.periodic")


class Periodic:
    """Run ``job`` at start and then every ``seconds``; start with :meth:`start`, stop with :meth:`stop`.

    Given ``locks`` (``kernel.job_locks``), the job runs in one process of
    the deployment at a time: each run first takes or confirms the job's
    lock, and is skipped while another process holds it. The holder keeps
    the job until it stops or dies (even by ``kill -9``); another process
    takes over at its next run. Without ``locks`` every process runs it.

    A failing run is logged and the next one comes as planned: a database
    hiccup must not end the job for good. A job should still be safe to run
    twice (a holder cut off from the database may finish a run while
    another takes over), as every bundled job is.
    """

    def __init__(self, name: str, seconds: float, job: Callable[[], Awaitable[Any]], *, locks: JobLocks | None = None) -> None:
        self.name = name
        self.seconds = seconds
        self.job = job
        self.locks = locks
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Begin the loop; its first run is now."""
        if not self.running:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Cancel the loop, wait for it, and hand the job to another process."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.locks is not None:
            await anyio.to_thread.run_sync(self.locks.release, self.name)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the job runs on, while it runs."""
        return self._task.get_loop() if self._task is not None else None

    async def _my_turn(self) -> bool:
        if self.locks is None:
            return True
        try:
            return await anyio.to_thread.run_sync(self.locks.hold, self.name)
        except Exception:
            logger.exception("%s: could not take its lock; skipping this run", self.name)
            return False

    async def _loop(self) -> None:
        while True:
            if await self._my_turn():
                try:
                    await self.job()
                except Exception:
                    logger.exception("%s failed; trying again in %s s", self.name, self.seconds)
            await asyncio.sleep(self.seconds)
