"""Notifications: stored per user, pushed over the realtime channel, listed on a page.

Plugins create them with :meth:`Notifications.notify`; the kernel itself
tells people about new followers. Each push carries the new unread count, so
every open tab can update its badge without asking.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, and_, func, insert, select, update

from kernel.errors import ApiError
from kernel.identity import CACHE_SECONDS, TtlCache, User, iso
from kernel.pagination import Page, decode_cursor, encode_cursor
from kernel.storage.models import notifications, utcnow

if TYPE_CHECKING:
    from kernel.app import Kernel

KIND_LENGTH = 64
TEXT_LENGTH = 500
URL_LENGTH = 500
DATA_LENGTH = 4000


class Notifications:
    """One kernel's notifications service."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.db = kernel.db
        self._unread = TtlCache(CACHE_SECONDS)

    async def notify(
        self,
        user: User | int,
        kind: str,
        text: str,
        *,
        url: str = "",
        actor: User | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store a notification for ``user`` and push it to their open connections.

        :param kind: ``<plugin>.<name>``, such as ``calls.missed``; clients may pick an icon by it.
        :param text: one plain sentence ("Alice (@alice) followed you"); it is escaped when shown.
        :param url: where clicking it leads, a local path.
        :param actor: who caused it, shown with their badge.
        :param data: anything more a client may use, as JSON.
        :returns: the notification as the API shows it.
        """
        user_id = user if isinstance(user, int) else user.id
        if "." not in kind or len(kind) > KIND_LENGTH:
            raise ValueError(f"notification kind '{kind}' must be '<plugin>.<name>', at most {KIND_LENGTH} characters")
        if url and (not url.startswith("/") or url.startswith("//") or "\\" in url or len(url) > URL_LENGTH):
            raise ValueError(f"notification url must be a local path of at most {URL_LENGTH} characters")
        encoded = json.dumps(data or {}, separators=(",", ":"))
        if len(encoded) > DATA_LENGTH:
            raise ValueError(f"notification data must encode to at most {DATA_LENGTH} characters of JSON")
        values = {
            "user_id": user_id,
            "kind": kind,
            "text": text[:TEXT_LENGTH],
            "url": url,
            "actor_id": actor.id if actor else None,
            "data": encoded,
            "created_at": utcnow(),
            "read_at": None,
        }

        def work(conn: Connection) -> tuple[int, int]:
            new_id = conn.execute(insert(notifications).values(**values).returning(notifications.c.id)).scalar_one()
            return new_id, _count_unread(conn, user_id)

        new_id, unread = await self.db.awrite(work)
        self._unread.put(user_id, unread)
        item = self._json({**values, "id": new_id}, actor)
        await self.kernel.realtime.send_to_user(user_id, {"type": "kernel.notification", "notification": item, "unread": unread})
        return item

    def is_cached(self, user_id: int) -> bool:
        """True when :meth:`unread_count` needs no query."""
        return self._unread.get(user_id) is not None

    def unread_count(self, user: User) -> int:
        """How many of the user's notifications are unread (cached for a few seconds)."""
        cached = self._unread.get(user.id)
        if cached is not None:
            return cached
        count = self.db.read(lambda conn: _count_unread(conn, user.id))
        self._unread.put(user.id, count)
        return count

    def list(self, user: User, cursor: str | None, limit: int, unread_only: bool = False) -> tuple[Page, int]:
        """The user's notifications, newest first, and the unread count."""
        after = decode_cursor(cursor, int)
        query = select(notifications).where(notifications.c.user_id == user.id).order_by(notifications.c.id.desc()).limit(limit + 1)
        if after is not None:
            query = query.where(notifications.c.id < after[0])
        if unread_only:
            query = query.where(notifications.c.read_at.is_(None))

        def work(conn: Connection) -> tuple[Sequence[Row[Any]], int]:
            return conn.execute(query).all(), _count_unread(conn, user.id)

        rows, unread = self.db.read(work)
        self._unread.put(user.id, unread)
        more = len(rows) > limit
        rows = rows[:limit]
        actors = {row.actor_id for row in rows if row.actor_id}
        people = {uid: self.kernel.user_by_id(uid) for uid in actors}
        self.kernel.entitlements.warm(actors)
        results = [self._json(row._mapping, people.get(row.actor_id)) for row in rows]
        return Page(results, encode_cursor(rows[-1].id) if more else None), unread

    async def mark_read(self, user: User, ids: Sequence[int] | None) -> int:
        """Mark the given notifications (all of them when None) read; returns the unread count left.

        Other tabs of the user hear of it, so their badges agree.
        """
        condition = and_(notifications.c.user_id == user.id, notifications.c.read_at.is_(None))
        if ids is not None:
            if not ids:
                raise ApiError(422, "validation_error", "ids: give at least one id, or all: true", field="ids")
            condition = and_(condition, notifications.c.id.in_(ids))

        def work(conn: Connection) -> int:
            conn.execute(update(notifications).where(condition).values(read_at=utcnow()))
            return _count_unread(conn, user.id)

        unread = await self.db.awrite(work)
        self._unread.put(user.id, unread)
        await self.kernel.realtime.send_to_user(user, {"type": "kernel.notifications_read", "unread": unread})
        return unread

    def _json(self, row: Any, actor: User | None) -> dict[str, Any]:
        return {
            "id": row["id"],
            "kind": row["kind"],
            "text": row["text"],
            "url": row["url"] or None,
            "actor": self.kernel.user_json(actor) if actor else None,
            "data": json.loads(row["data"] or "{}"),
            "created_at": iso(row["created_at"]),
            "read": row["read_at"] is not None,
        }


def _count_unread(conn: Connection, user_id: int) -> int:
    query = select(func.count()).select_from(notifications).where(notifications.c.user_id == user_id, notifications.c.read_at.is_(None))
    return conn.execute(query).scalar_one()

