"""Counting failures per key in a sliding window (login attempts)."""

from __future__ import annotations

import math
import time
from collections import deque


class FailureLimiter:
    """Refuse a key once it has ``limit`` failures within ``window`` seconds.

    Kept in the process: each process of a deployment counts on its own, so
    the effective limit scales with the number of processes.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 when it may now."""
        now = time.monotonic()
        failures = self._recent(key, now)
        if len(failures) < self.limit:
            return 0
        return max(1, math.ceil(failures[0] + self.window - now))

    def fail(self, key: str) -> None:
        self._failures.setdefault(key, deque()).append(time.monotonic())

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)

    def forgive(self, key: str) -> None:
        """Take back the latest failure of ``key`` (an attempt that turned out to succeed)."""
        failures = self._failures.get(key)
        if failures:
            failures.pop()
