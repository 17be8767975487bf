"""Reading the answers of a hook call: every running plugin's results as one list, or awaited in turn.

A call through :attr:`kernel.Kernel.hook` answers a list with one entry per
plugin that implements the hook (None left out); these turn it into what
the caller wants::

    widgets = await collect_async(kernel.hook.post_widgets(request=request, viewer=viewer, post=post))
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any


def collect(answers: Iterable[Any]) -> list[Any]:
    """The answers of a collecting hook as one list: each plugin's iterable spread out, None left out."""
    results: list[Any] = []
    for answer in answers:
        if isinstance(answer, Iterable) and not isinstance(answer, (str, bytes, Mapping)):
            results.extend(answer)
        elif answer is not None:
            results.append(answer)
    return results


async def collect_async(answers: Iterable[Any]) -> list[Any]:
    """:func:`collect` for hooks that may be coroutine functions: each awaitable answer is awaited first, in order."""
    return collect(await _awaited(list(answers)))


async def settle(answers: Iterable[Any]) -> None:
    """Await, in plugin order, the answers of an event hook that are awaitable (each plugin's errors are logged by its guard)."""
    await _awaited(list(answers))


async def _awaited(answers: list[Any]) -> list[Any]:
    """Each answer, awaited when awaitable, one after another.

    Pluggy calls every implementation before anything is awaited, so each
    coroutine exists already: should this be cancelled halfway (a server
    stopping), the ones not reached are closed rather than left to warn that
    they were never awaited.
    """
    results: list[Any] = []
    try:
        for answer in answers:
            results.append(await answer if inspect.isawaitable(answer) else answer)
    finally:
        for answer in answers[len(results) + 1 :]:
            close = getattr(answer, "close", None)
            if inspect.isawaitable(answer) and callable(close):
                close()
    return results
