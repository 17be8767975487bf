"""Payment requests: "@bob requests $12.00". The payer pays or declines; the requester may cancel.

A request is ``pending`` until exactly one of ``paid``, ``declined`` or
``cancelled`` wins: each is one conditional UPDATE (``WHERE status =
'pending'``) that the database applies atomically. Paying claims the request
and posts the payment in ONE database transaction, so a request is paid at
most once however many accepts race, and a refused payment (insufficient
funds) leaves it pending.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
from sqlalchemy import and_, or_, select

from kernel import ApiError, Page, User, decode_cursor, encode_cursor, inserted_id, iso, utcnow
from plugins.payments.ledger import WALLET, Ledger, Leg
from plugins.payments.models import payment_requests
from plugins.payments.money import money
from plugins.payments.settings import PaymentsSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Row

    from kernel import Kernel

PENDING, PAID, DECLINED, CANCELLED = "pending", "paid", "declined", "cancelled"
STATUSES = (PENDING, PAID, DECLINED, CANCELLED)
INCOMING, OUTGOING = "incoming", "outgoing"
DIRECTIONS = (INCOMING, OUTGOING)
# The ledger transaction kind of a paid request, so both histories tell it from a plain transfer.
REQUEST_KIND = "request"
# Ids are 32-bit integers in the database: a larger one in a URL is simply not found.
MAX_ID = 2**31 - 1

PAYER, REQUESTER = "payer", "requester"


def not_found() -> ApiError:
    return ApiError(404, "not_found", "No such payment request.")


class PaymentRequests:
    """Payment requests between the users of one kernel, paid through its ledger."""

    def __init__(self, kernel: Kernel, settings: PaymentsSettings, ledger: Ledger) -> None:
        self.kernel = kernel
        self.settings = settings
        self.ledger = ledger

    # What a user does --------------------------------------------------------------------

    async def create(self, requester: User, payer_name: str, amount: int, note: str) -> dict[str, Any]:
        """Ask the user named ``payer_name`` for ``amount``; returns the request, pending.

        Refusals: 422 ``invalid_amount``, 404 ``unknown_user``, 422
        ``self_request``, 403 ``blocked`` (either way). The payer gets a
        notification and a realtime ``payments.requested``.
        """
        if not 0 < amount <= self.settings.max_transfer:
            limit = money(self.settings.max_transfer, self.settings.currency)
            raise ApiError(422, "invalid_amount", f"amount: a whole number of cents from 1 to {limit}.", field="amount")
        payer = await anyio.to_thread.run_sync(self.kernel.user, payer_name)
        if payer is None:
            raise ApiError(404, "unknown_user", f"from: there is no user '{payer_name}'.", field="from")
        if payer.id == requester.id:
            raise ApiError(422, "self_request", "from: you cannot request money from yourself.", field="from")
        if await anyio.to_thread.run_sync(self.kernel.is_blocked, requester, payer):
            raise ApiError(403, "blocked", "You cannot request money from this account.")
        row = await anyio.to_thread.run_sync(self._insert, requester.id, payer.id, amount, note)
        shown = await self._json(row)
        text = f"{_name(requester)} requests {money(amount, row.currency)}" + (f": {note}" if note else "")
        data = {"request_id": row.id, "amount": amount}
        await self.kernel.notifications.notify(payer, "payments.requested", text, url="/payments/", actor=requester, data=data)
        await self.kernel.realtime.send_to_user(payer, {"type": "payments.requested", "request": shown})
        return shown

    async def page(self, user: User, direction: str | None, status: str | None, cursor: str | None, limit: int) -> Page:
        """The user's requests, newest first: ``incoming`` (asked of them), ``outgoing`` (theirs), or both."""
        after = decode_cursor(cursor, int)
        rows = await anyio.to_thread.run_sync(self._page, user.id, direction, status, after[0] if after else None, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        results = await self._many_json(rows)
        return Page(results, encode_cursor(rows[-1].id) if more else None)

    async def accept(self, payer: User, request_id: int) -> dict[str, Any]:
        """Pay a pending request asked of ``payer``; returns it, ``paid``, with its ``transaction_id``.

        Refusals: 404 ``not_found`` (no such request, or not a party), 403
        ``forbidden`` (the requester), 403 ``blocked``, 409 ``not_pending``,
        409 ``insufficient_funds`` (the request stays pending).
        """
        row = await anyio.to_thread.run_sync(self._get, payer.id, request_id, PAYER)
        requester = await anyio.to_thread.run_sync(self.kernel.user_by_id, row.requester_id)
        if requester is None:
            raise not_found()
        if await anyio.to_thread.run_sync(self.kernel.is_blocked, payer, requester):
            raise ApiError(403, "blocked", "You cannot send money to this account.")
        row = await anyio.to_thread.run_sync(self._pay, payer.id, request_id)
        shown = await self._json(row)
        text = f"{_name(payer)} paid your request for {money(row.amount, row.currency)}" + (f": {row.note}" if row.note else "")
        await self._tell(requester, "payments.request_paid", text, payer, shown)
        return shown

    async def decline(self, payer: User, request_id: int) -> dict[str, Any]:
        """Refuse a pending request asked of ``payer``; the requester is told. Refusals as :meth:`accept`, bar money."""
        row = await anyio.to_thread.run_sync(self._decide, payer.id, request_id, PAYER, DECLINED)
        shown = await self._json(row)
        requester = await anyio.to_thread.run_sync(self.kernel.user_by_id, row.requester_id)
        if requester is not None:
            text = f"{_name(payer)} declined your request for {money(row.amount, row.currency)}" + (f": {row.note}" if row.note else "")
            await self._tell(requester, "payments.request_declined", text, payer, shown)
        return shown

    async def cancel(self, requester: User, request_id: int) -> dict[str, Any]:
        """Withdraw one's own pending request; the payer's open pages learn it over realtime (no notification)."""
        row = await anyio.to_thread.run_sync(self._decide, requester.id, request_id, REQUESTER, CANCELLED)
        shown = await self._json(row)
        await self.kernel.realtime.send_to_user(row.payer_id, {"type": "payments.request_updated", "request": shown})
        return shown

    # Blocking database work ----------------------------------------------------------------

    def _insert(self, requester_id: int, payer_id: int, amount: int, note: str) -> Row:
        values = {
            "requester_id": requester_id,
            "payer_id": payer_id,
            "amount": amount,
            "currency": self.settings.currency,
            "note": note,
            "status": PENDING,
            "created_at": utcnow(),
        }

        def work(conn: Connection) -> Row:
            request_id = inserted_id(conn.execute(payment_requests.insert().values(values)))
            return _row(conn, request_id)

        return self.kernel.db.write(work)

    def _page(self, user_id: int, direction: str | None, status: str | None, before: int | None, limit: int) -> list[Row]:
        table = payment_requests.c
        if direction == INCOMING:
            condition = table.payer_id == user_id
        elif direction == OUTGOING:
            condition = table.requester_id == user_id
        else:
            condition = or_(table.payer_id == user_id, table.requester_id == user_id)
        if status is not None:
            condition = and_(condition, table.status == status)
        if before is not None:
            condition = and_(condition, table.id < before)
        query = select(payment_requests).where(condition).order_by(table.id.desc()).limit(limit)
        return list(self.kernel.db.read(lambda conn: conn.execute(query).all()))

    def _get(self, user_id: int, request_id: int, role: str) -> Row:
        return self.kernel.db.read(lambda conn: _as_party(conn, request_id, user_id, role))

    def _pay(self, payer_id: int, request_id: int) -> Row:
        def work(conn: Connection) -> Row:
            row = _as_party(conn, request_id, payer_id, PAYER)
            # Claim first: a concurrent accept waits on this row and then finds it no longer pending.
            _settle(conn, request_id, PAID)
            legs = [
                Leg(self.ledger.account_id(conn, payer_id, WALLET), -row.amount, guarded=True),
                Leg(self.ledger.account_id(conn, row.requester_id, WALLET), row.amount, guarded=True),
            ]
            # Raises insufficient_funds, which rolls the claim back too: the request stays pending.
            transaction_id = self.ledger.post(conn, REQUEST_KIND, legs, actor_id=payer_id, note=row.note)
            conn.execute(payment_requests.update().where(payment_requests.c.id == request_id).values(transaction_id=transaction_id))
            return _row(conn, request_id)

        return self.kernel.db.write(work)

    def _decide(self, user_id: int, request_id: int, role: str, status: str) -> Row:
        def work(conn: Connection) -> Row:
            _as_party(conn, request_id, user_id, role)
            _settle(conn, request_id, status)
            return _row(conn, request_id)

        return self.kernel.db.write(work)

    # Showing -------------------------------------------------------------------------------

    async def _tell(self, user: User, kind: str, text: str, actor: User, shown: dict[str, Any]) -> None:
        data = {"request_id": shown["id"], "amount": shown["amount"], "status": shown["status"]}
        await self.kernel.notifications.notify(user, kind, text, url="/payments/", actor=actor, data=data)
        await self.kernel.realtime.send_to_user(user, {"type": "payments.request_updated", "request": shown})

    async def _json(self, row: Row) -> dict[str, Any]:
        return (await self._many_json([row]))[0]

    async def _many_json(self, rows: list[Row]) -> list[dict[str, Any]]:
        ids = {row.requester_id for row in rows} | {row.payer_id for row in rows}
        found = await anyio.to_thread.run_sync(lambda: {user_id: self.kernel.user_by_id(user_id) for user_id in ids})
        people = {user_id: user for user_id, user in found.items() if user is not None}
        await self.kernel.prepare_users(list(people.values()))
        users = {user_id: self.kernel.user_json(user) for user_id, user in people.items()}
        return [
            {
                "id": row.id,
                "requester": users.get(row.requester_id),
                "payer": users.get(row.payer_id),
                "amount": row.amount,
                "currency": row.currency,
                "note": row.note,
                "status": row.status,
                "created_at": iso(row.created_at),
                "decided_at": iso(row.decided_at),
                "transaction_id": row.transaction_id,
            }
            for row in rows
        ]


def _name(user: User) -> str:
    return f"{user.display_name or user.username} (@{user.username})"


def _row(conn: Connection, request_id: int) -> Row:
    return conn.execute(select(payment_requests).where(payment_requests.c.id == request_id)).one()


def _as_party(conn: Connection, request_id: int, user_id: int, role: str) -> Row:
    """The request, if ``user_id`` may act on it as ``role`` and it is pending; else the refusal."""
    row = conn.execute(select(payment_requests).where(payment_requests.c.id == request_id)).first() if request_id <= MAX_ID else None
    # Someone who is neither party learns nothing, not even that the request exists.
    if row is None or user_id not in (row.requester_id, row.payer_id):
        raise not_found()
    if (row.payer_id if role == PAYER else row.requester_id) != user_id:
        who = "the person asked to pay can accept or decline" if role == PAYER else "the person who asked can cancel"
        raise ApiError(403, "forbidden", f"Only {who} this request.")
    if row.status != PENDING:
        raise _not_pending(row.status)
    return row


def _settle(conn: Connection, request_id: int, status: str) -> None:
    """Move a pending request to ``status``; 409 ``not_pending`` when another decision won meanwhile."""
    table = payment_requests.c
    update = payment_requests.update().where(table.id == request_id, table.status == PENDING).values(status=status, decided_at=utcnow())
    if conn.execute(update).rowcount != 1:
        raise _not_pending(conn.execute(select(table.status).where(table.id == request_id)).scalar_one())


def _not_pending(status: str) -> ApiError:
    return ApiError(409, "not_pending", f"This request is already {status}.", request_status=status)
