"""The background task that accrues savings interest every hour while the app serves.

Hourly rather than once at midnight: a process started at any time, or one
that was down at midnight, catches up within the hour. It runs in one process
of the deployment at a time (its lock); running it twice would still be
safe: :meth:`Savings.accrue_interest` pays a day at most once per account,
whoever runs it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio.to_thread

from kernel import Periodic, utcnow
from plugins.payments.savings import Savings

if TYPE_CHECKING:
    from kernel import JobLocks

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 3600


class InterestJob(Periodic):
    """Start with :meth:`start` (the plugin's start-up), stop with :meth:`stop` (its shut-down)."""

    def __init__(self, savings: Savings, interval: float = INTERVAL_SECONDS, *, locks: JobLocks | None = None) -> None:
        super().__init__("payments-interest", interval, self.tick, locks=locks)
        self.savings = savings

    async def tick(self) -> int:
        """One run: accrue every ended day that is due; returns the accounts accrued."""
        accrued = await anyio.to_thread.run_sync(self.savings.accrue_due, utcnow().date())
        if accrued:
            logger.info("accrued savings interest on %d account(s)", accrued)
        return accrued
