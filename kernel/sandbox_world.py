"""What a plugin is given to seed its part of the sandbox's demo world (the ``seed_sandbox`` hook).

``everything sandbox`` signs the cast up, grants their plans, makes the
operator and the follows and contacts; then every running plugin adds its
part through :func:`kernel.plugin.hookspecs.seed_sandbox`, reading the cast from a
:class:`SandboxWorld`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel.app import Kernel
    from kernel.identity import User

log = logging.getLogger("kernel.sandbox")


@dataclass(frozen=True)
class Person:
    """One member of the demo cast, as the sandbox's logins table shows them."""

    username: str
    display_name: str
    bio: str
    plans: tuple[str, ...] = ()
    operator: bool = False
    # A bot is driven by the sandbox itself (it answers calls, speaks in a Space); nobody logs in as it.
    bot: bool = False
    # Tickers, topics and the like, so that what plugins seed for a person fits them.
    interests: tuple[str, ...] = ()


@dataclass
class SandboxWorld:
    """The seeded deployment as plugins see it while they seed: who is in it and how to reach it.

    :param url: the server's base URL (``http://127.0.0.1:8000``); bots connect to it as clients do.
    :param password: every person's password.
    :param people: the cast, humans first.
    :param users: each person's account, by username.
    :param now: when seeding began, in UTC without tzinfo as the kernel stores times; back-date history from it.
    :param random: this plugin's own generator, seeded from ``seed`` and the plugin's name, so that a
        seed gives the same world every time whichever other plugins run.
    :param seed: the sandbox's seed (``--seed``).
    """

    kernel: Kernel
    url: str
    password: str
    people: Sequence[Person]
    users: dict[str, User]
    now: datetime
    random: random.Random
    seed: int = 1
    notes: list[str] = field(default_factory=list)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def user(self, username: str) -> User:
        """The account of ``username``, one of the cast."""
        return self.users[username]

    @property
    def humans(self) -> list[Person]:
        """The people someone may log in as."""
        return [person for person in self.people if not person.bot]

    @property
    def bots(self) -> list[Person]:
        """The people the sandbox drives itself."""
        return [person for person in self.people if person.bot]

    def token(self, username: str, name: str = "sandbox bot") -> str:
        """A fresh API token for ``username``: how a bot's client or a seed speaks to the API as someone, without a password."""
        return str(self.kernel.identity.create_token(self.users[username].id, name)["token"])

    def note(self, line: str) -> None:
        """Say what was seeded: printed under the logins (``@radio_bot is live in "Market open" at /spaces/1``)."""
        self.notes.append(line)

    def background(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work()`` until the sandbox stops (a bot's client loop); it is cancelled then, so use ``async with``.

        A bot that fails is logged with ``name`` and the rest of the sandbox goes on.
        """

        async def guarded() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sandbox: %s stopped", name)

        task = asyncio.get_running_loop().create_task(guarded(), name=f"sandbox: {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop_background(self, timeout: float = 10.0) -> None:
        """Cancel every bot and wait until each has closed its clients, ``timeout`` seconds at most (a peer may hang closing)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            log.warning("sandbox: %s did not stop within %g s; leaving it", task.get_name(), timeout)
