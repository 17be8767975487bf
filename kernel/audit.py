"""The audit log: who changed a switch, a grant or an operator right, and when.

Every change writes its line in the same transaction as the change itself,
so the log never claims what did not happen, nor misses what did.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select

from kernel.identity import User, iso
from kernel.pagination import Page, decode_cursor, encode_cursor
from kernel.storage.database import Database
from kernel.storage.models import audit_log, utcnow


def actor_label(actor: User | str) -> tuple[int | None, str]:
    """The id and the shown name of whoever acts: a user (``@alice``), or a tool (``cli``, ``payments``)."""
    if isinstance(actor, User):
        return actor.id, f"@{actor.username}"
    return None, actor


def record(conn: Connection, actor: User | str, action: str, target: str, detail: str = "") -> None:
    """Append one line inside the caller's transaction."""
    actor_id, label = actor_label(actor)
    conn.execute(
        insert(audit_log).values(at=utcnow(), actor_id=actor_id, actor=label[:64], action=action, target=target[:200], detail=detail[:1000])
    )


def entry_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "at": iso(row.at), "actor": row.actor, "action": row.action, "target": row.target, "detail": row.detail}


def list_entries(db: Database, cursor: str | None, limit: int) -> Page:
    """The log, newest first."""
    after = decode_cursor(cursor, int)
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit + 1)
    if after is not None:
        query = query.where(audit_log.c.id < after[0])
    rows = db.read(lambda conn: conn.execute(query).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([entry_json(row) for row in rows], encode_cursor(rows[-1].id) if more else None)
