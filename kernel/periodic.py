"""A job a plugin runs now and then in each process while the app serves (billing looks, interest, order matching)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger("everything.periodic")


class Periodic:
    """Run ``job`` at start and then every ``seconds``; start with :meth:`start`, stop with :meth:`stop`.

    A failing run is logged and the next one comes as planned: a database
    hiccup must not end the job for good. Every job given here is safe to
    run in several processes at once (a job that is not says so).
    """

    def __init__(self, name: str, seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
        self.name = name
        self.seconds = seconds
        self.job = job
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Begin the loop; its first run is now."""
        if not self.running:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Cancel the loop and wait for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the job runs on, while it runs."""
        return self._task.get_loop() if self._task is not None else None

    async def _loop(self) -> None:
        while True:
            try:
                await self.job()
            except Exception:
                logger.exception("%s failed; trying again in %s s", self.name, self.seconds)
            await asyncio.sleep(self.seconds)
