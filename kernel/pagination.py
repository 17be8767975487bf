"""Pages of results with opaque cursors: how every list in the API is cut, and how it is answered."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernel.errors import ApiError
from kernel.identity import MAX_ID


@dataclass(frozen=True)
class Page:
    """One page of a list: its results, and the cursor of the next page (None on the last)."""

    results: list[Any]
    next_cursor: str | None

    def as_json(self, shape: Callable[[Any], Any] | None = None, **extra: Any) -> dict[str, Any]:
        """The list answer every API gives: ``{"results": [...], "next_cursor": ...}``.

        :param shape: turns each result into its JSON (``kernel.user_json``); results go as they are without it.
        :param extra: more members of the answer, such as ``unread``.
        """
        results = self.results if shape is None else [shape(item) for item in self.results]
        return {"results": results, **extra, "next_cursor": self.next_cursor}


def encode_cursor(*parts: Any) -> str:
    """An opaque cursor holding ``parts`` (JSON values: the sort key of the last result shown)."""
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *types: type) -> list[Any] | None:
    """The parts of a cursor made by :func:`encode_cursor`, checked against ``types``; None when there is no cursor.

    :raises ApiError: 422 ``invalid_cursor`` for anything this endpoint did not give out.
    """
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, RecursionError):
        parts = None
    if not isinstance(parts, list) or len(parts) != len(types) or not all(_fits(part, kind) for part, kind in zip(parts, types, strict=True)):
        raise ApiError(422, "invalid_cursor", "cursor: not a cursor this endpoint gave out", field="cursor")
    return parts


def _fits(part: Any, kind: type) -> bool:
    if kind is int:
        return type(part) is int and 0 <= part <= MAX_ID
    if kind is str:
        return type(part) is str and "\x00" not in part
    return type(part) is kind
