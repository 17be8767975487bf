"""Call records: one row per call, from invite to end, and the transitions between its states.

Every transition is one conditional UPDATE (``WHERE state = 'ringing'``,
``WHERE state <> 'ended'``), so that when two connections race — two tabs
answering, a hang-up crossing a timeout, two processes — the database lets
exactly one of them win, and the loser learns it lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, or_, select
from sqlalchemy.exc import IntegrityError

from kernel import ApiError, Page, decode_cursor, encode_cursor, iso, utcnow
from plugins.calls.models import calls

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from kernel import Kernel

RINGING, ANSWERED, ENDED = "ringing", "answered", "ended"
SIDES = ("caller", "callee")
# Ended unanswered for one of these, a call is a missed call for its callee.
MISSED_REASONS = frozenset({"timeout", "unavailable", "busy", "cancelled"})


@dataclass(frozen=True)
class Call:
    """One call as stored."""

    id: int
    call_id: str
    caller_id: int
    callee_id: int
    media: str
    state: str
    invited_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    ended_by_id: int | None
    caller_connection: str | None
    callee_connection: str | None
    offer: str | None
    answer: str | None
    caller_grace_until: datetime | None
    callee_grace_until: datetime | None

    @property
    def live(self) -> bool:
        return self.state != ENDED

    @property
    def missed(self) -> bool:
        return self.state == ENDED and self.answered_at is None and self.end_reason in MISSED_REASONS

    def side_of(self, user_id: int) -> str | None:
        """``caller``, ``callee`` or None for someone else."""
        if user_id == self.caller_id:
            return "caller"
        if user_id == self.callee_id:
            return "callee"
        return None


def _call(row: Any) -> Call:
    return Call(**row._mapping)


class Records:
    """The call records of one kernel. Blocking methods: run them off the event loop."""

    def __init__(self, kernel: Kernel) -> None:
        self.db = kernel.db

    def create(self, call_id: str, caller_id: int, callee_id: int, media: str, caller_connection: str, offer: str) -> Call:
        """Store a new ringing call; 409 ``call_exists`` when the id is taken."""
        values = {
            "call_id": call_id,
            "caller_id": caller_id,
            "callee_id": callee_id,
            "media": media,
            "state": RINGING,
            "invited_at": utcnow(),
            "caller_connection": caller_connection,
            "offer": offer,
        }
        try:
            self.db.write(lambda conn: conn.execute(calls.insert().values(values)))
        except IntegrityError:
            message = "call_id: that id is taken; choose another (a random UUID)."
            raise ApiError(409, "call_exists", message, field="call_id") from None
        found = self.get(call_id)
        assert found is not None
        return found

    def get(self, call_id: str) -> Call | None:
        """The call with this id, whoever's it is."""
        row = self.db.read(lambda conn: conn.execute(select(calls).where(calls.c.call_id == call_id)).first())
        return _call(row) if row is not None else None

    def live_calls(self, user_id: int) -> list[Call]:
        """Every ringing or answered call of the user's, oldest first."""
        query = (
            select(calls)
            .where(calls.c.state != ENDED, or_(calls.c.caller_id == user_id, calls.c.callee_id == user_id))
            .order_by(calls.c.id)
        )
        return [_call(row) for row in self.db.read(lambda conn: conn.execute(query).all())]

    def live_calls_everywhere(self) -> list[Call]:
        """Every ringing or answered call of the deployment."""
        return [_call(row) for row in self.db.read(lambda conn: conn.execute(select(calls).where(calls.c.state != ENDED)).all())]

    def bound_to(self, connection_key: str) -> list[Call]:
        """The live calls bound to a connection, as caller or as the answering callee."""
        query = select(calls).where(
            calls.c.state != ENDED, or_(calls.c.caller_connection == connection_key, calls.c.callee_connection == connection_key)
        )
        return [_call(row) for row in self.db.read(lambda conn: conn.execute(query).all())]

    def answer(self, call_id: str, connection_key: str, sdp: str) -> Call | None:
        """Mark a ringing call answered by this connection; None when it no longer rings (someone else won)."""
        values = {"state": ANSWERED, "answered_at": utcnow(), "callee_connection": connection_key, "offer": None, "answer": sdp}
        return self._transition(call_id, calls.c.state == RINGING, **values)

    def end(self, call_id: str, reason: str, by_id: int | None = None, *, only: str | None = None) -> Call | None:
        """End a live call (only in state ``only`` when given); None when it had already ended or left that state."""
        condition = calls.c.state == only if only else calls.c.state != ENDED
        values = {"state": ENDED, "ended_at": utcnow(), "end_reason": reason, "ended_by_id": by_id, "offer": None, "answer": None}
        return self._transition(call_id, condition, **values)

    def bind(self, call_id: str, side: str, connection_key: str, now: datetime) -> Call | None:
        """Bind a live call's ``side`` to a new connection (after a reconnect) and lift its grace deadline.

        None when the call has ended, or when that side's deadline had passed
        by ``now``: a resume that comes too late loses to the sweep.
        """
        grace = calls.c[f"{side}_grace_until"]
        condition = and_(calls.c.state != ENDED, or_(grace.is_(None), grace > now))
        return self._transition(call_id, condition, **{f"{side}_connection": connection_key, f"{side}_grace_until": None})

    def start_grace(self, call_id: str, side: str, connection_key: str, until: datetime) -> Call | None:
        """Give ``side`` until ``until`` to resume, if the call is still bound to ``connection_key`` and has no deadline there yet.

        None when it was not: the side resumed on another connection, the
        call ended, or another process set the deadline first (the earlier one stands).
        """
        condition = and_(
            calls.c.state != ENDED, calls.c[f"{side}_connection"] == connection_key, calls.c[f"{side}_grace_until"].is_(None)
        )
        return self._transition(call_id, condition, **{f"{side}_grace_until": until})

    def lift_grace(self, call_id: str, side: str, connection_key: str) -> Call | None:
        """Lift ``side``'s deadline while the call is still bound to ``connection_key``, a socket known to be open.

        None when there was nothing to lift: no deadline, the side moved on to
        another connection, or the call ended.
        """
        condition = and_(
            calls.c.state != ENDED, calls.c[f"{side}_connection"] == connection_key, calls.c[f"{side}_grace_until"].is_not(None)
        )
        return self._transition(call_id, condition, **{f"{side}_grace_until": None})

    def end_expired(self, call_id: str, now: datetime) -> Call | None:
        """End the call as ``disconnected`` if a side's deadline has passed by ``now``, by the side that went (the caller if both did).

        None when no deadline had passed (a resume lifted it) or the call had
        already ended: of several processes sweeping at once, one ends it.
        """
        caller_gone = calls.c.caller_grace_until <= now
        condition = and_(calls.c.state != ENDED, or_(caller_gone, calls.c.callee_grace_until <= now))
        gone = case((caller_gone, calls.c.caller_id), else_=calls.c.callee_id)
        values = {"state": ENDED, "ended_at": now, "end_reason": "disconnected", "ended_by_id": gone, "offer": None, "answer": None}
        return self._transition(call_id, condition, **values)

    def _transition(self, call_id: str, condition: Any, **values: Any) -> Call | None:
        def work(conn: Connection) -> Call | None:
            changed = conn.execute(calls.update().where(calls.c.call_id == call_id, condition).values(**values)).rowcount
            if not changed:
                return None
            return _call(conn.execute(select(calls).where(calls.c.call_id == call_id)).one())

        return self.db.write(work)

    def history(self, user_id: int, cursor: str | None, limit: int) -> Page:
        """The user's calls, placed and received, newest first; ``results`` are :class:`Call`s."""
        after = decode_cursor(cursor, int)
        mine = or_(calls.c.caller_id == user_id, calls.c.callee_id == user_id)
        query = select(calls).where(and_(mine, calls.c.id < after[0]) if after else mine).order_by(calls.c.id.desc()).limit(limit + 1)
        rows = [_call(row) for row in self.db.read(lambda conn: conn.execute(query).all())]
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, encode_cursor(rows[-1].id) if more else None)


def call_json(kernel: Kernel, call: Call, viewer_id: int) -> dict[str, Any]:
    """The API's call object, from ``viewer_id``'s side."""
    caller, callee = kernel.user_by_id(call.caller_id), kernel.user_by_id(call.callee_id)
    ended_by = kernel.user_by_id(call.ended_by_id) if call.ended_by_id else None
    duration = None
    if call.answered_at is not None and call.ended_at is not None:
        duration = round((call.ended_at - call.answered_at).total_seconds())
    return {
        "call_id": call.call_id,
        "caller": kernel.user_json(caller) if caller else None,
        "callee": kernel.user_json(callee) if callee else None,
        "media": call.media,
        "state": call.state,
        "direction": "outgoing" if viewer_id == call.caller_id else "incoming",
        "invited_at": iso(call.invited_at),
        "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
        "end_reason": call.end_reason,
        "ended_by": ended_by.username if ended_by else None,
        "missed": call.missed and viewer_id == call.callee_id,
        "duration_seconds": duration,
    }
