"""The double-entry ledger: every movement of money is one transaction whose entries sum to zero.

Invariants (TigerBeetle's, kept by construction and checked by :meth:`Ledger.audit`):

- entries are only ever inserted; a correction is a reversing transaction;
- each transaction's entries sum to zero, so the whole ledger sums to zero;
- an account's cached balance changes only with an entry, in the same
  database transaction, so it always equals the sum of its entries;
- a user's account never goes below zero: the debit is one conditional
  UPDATE (``balance + amount >= 0``) that the database applies atomically,
  however many requests race for the same money.

System accounts (``user_id`` NULL) stand for the world outside: ``external``
is where top-ups come from, ``interest`` pays savings interest. They may go
negative; the global sum stays zero.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, ColumnElement, TextClause, and_, bindparam, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from kernel import ApiError, Page, decode_cursor, encode_cursor, inserted_id, iso, utcnow
from plugins.payments.models import accounts, entries, transactions

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from kernel import Database

WALLET, SAVINGS = "wallet", "savings"
EXTERNAL, INTEREST = "external", "interest"


def insufficient_funds() -> ApiError:
    return ApiError(409, "insufficient_funds", "amount: more than your wallet holds.", field="amount")


@dataclass(frozen=True)
class Leg:
    """One entry to write: ``amount`` (signed minor units) on ``account_id``; ``guarded`` debits may not overdraw."""

    account_id: int
    amount: int
    guarded: bool


# The statements of a posting, built once: SQLAlchemy then finds each compiled in its cache
# instead of building, hashing and compiling a new statement for every transfer.
_INSERT_TRANSACTION = transactions.insert()
# One UPDATE per leg, sent together (executemany): the balance moves only where the guard allows.
_MOVE = (
    accounts.update()
    .where(
        accounts.c.id == bindparam("account"),
        or_(bindparam("unguarded", type_=Boolean), accounts.c.balance + bindparam("amount") >= 0),
    )
    .values(balance=accounts.c.balance + bindparam("amount"))
)
_ENTRY_ROWS: dict[int, TextClause] = {}


def _insert_entries(count: int) -> TextClause:
    """One INSERT of ``count`` entries (parameters ``transaction``, ``account_<i>``, ``amount_<i>``).

    As text: SQLAlchemy does not cache the compiled form of a multi-row
    ``insert().values([...])``, and compiling it again cost more than running it.
    """
    statement = _ENTRY_ROWS.get(count)
    if statement is None:
        rows = ", ".join(f"(:transaction, :account_{i}, :amount_{i})" for i in range(count))
        statement = _ENTRY_ROWS[count] = text(f"INSERT INTO {entries.name} (transaction_id, account_id, amount) VALUES {rows}")
    return statement


class Ledger:
    """Accounts, transactions and entries of one deployment, in one currency. Blocking: run off the event loop."""

    def __init__(self, db: Database, currency: str) -> None:
        self.db = db
        self.currency = currency
        # Account ids never change and accounts are never deleted: remember those seen committed.
        self._account_ids: dict[tuple[int | None, str], int] = {}
        # A transfer's row, unless its idempotency key is taken: then nothing, and it is a retry.
        dialect = sqlite if db.is_sqlite else postgresql
        self._insert_transfer = (
            dialect.insert(transactions)
            .on_conflict_do_nothing(index_elements=[transactions.c.actor_id, transactions.c.idempotency_key])
            .returning(transactions.c.id)
        )

    # Accounts --------------------------------------------------------------------------

    def account_id(self, conn: Connection, user_id: int | None, kind: str) -> int:
        """The id of a user's (or, with None, the system's) account of ``kind``, made on first use."""
        known = self._account_ids.get((user_id, kind))
        if known is not None:
            return known
        owner = accounts.c.user_id == user_id if user_id is not None else accounts.c.user_id.is_(None)
        query = select(accounts.c.id).where(owner, accounts.c.kind == kind, accounts.c.currency == self.currency)
        found = conn.execute(query).scalar()
        if found is not None:
            # Not one made in this transaction, which a rollback could still undo.
            self._account_ids[(user_id, kind)] = found
            return found
        values = {"user_id": user_id, "kind": kind, "currency": self.currency, "balance": 0, "created_at": utcnow()}
        try:
            with conn.begin_nested():
                return inserted_id(conn.execute(accounts.insert().values(values)))
        except IntegrityError:  # made by a concurrent request meanwhile
            return conn.execute(query).scalar_one()

    def balances(self, user_id: int) -> dict[str, int]:
        """The user's balances by account kind (wallet and savings, 0 when never used)."""
        query = select(accounts.c.kind, accounts.c.balance).where(accounts.c.user_id == user_id, accounts.c.currency == self.currency)
        found = {row.kind: row.balance for row in self.db.read(lambda conn: conn.execute(query).all())}
        return {WALLET: found.get(WALLET, 0), SAVINGS: found.get(SAVINGS, 0)}

    # Posting ---------------------------------------------------------------------------

    def post(self, conn: Connection, kind: str, legs: list[Leg], *, actor_id: int | None, note: str = "", **extra: Any) -> int:
        """Write one balanced transaction inside ``conn``'s database transaction; returns its id.

        Raises 409 ``insufficient_funds`` (and so rolls everything back) when a
        guarded debit would take its account below zero.
        """
        _check_balanced(legs)
        row = {"kind": kind, "created_at": utcnow(), "actor_id": actor_id, "note": note, **extra}
        transaction_id = inserted_id(conn.execute(_INSERT_TRANSACTION, row))
        _write_legs(conn, transaction_id, legs)
        return transaction_id

    def transfer(self, payer_id: int, payee_id: int, amount: int, note: str, idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
        """Move ``amount`` from the payer's wallet to the payee's; returns (the transaction, whether it was a retry).

        The same idempotency key with the same request returns the first
        result; with another request it is 409 ``idempotency_conflict``.

        Three statements between BEGIN and COMMIT: the transaction's row,
        which is also the idempotency check (``ON CONFLICT DO NOTHING
        RETURNING id``: no id means the key was used); both guarded balance
        updates, sent as one batch; both entries, in one INSERT. The answer
        is made from what was written, not read back.
        """
        if amount <= 0 or payer_id == payee_id:
            raise ValueError("a transfer is a positive amount between two users")
        request_hash = _hash({"to": payee_id, "amount": amount, "note": note}) if idempotency_key else None

        def work(conn: Connection) -> tuple[dict[str, Any], bool]:
            now = utcnow()
            row = {
                "kind": "transfer",
                "created_at": now,
                "actor_id": payer_id,
                "note": note,
                "idempotency_key": idempotency_key,
                "request_hash": request_hash,
            }
            transaction_id = conn.execute(self._insert_transfer, row).scalar()
            if transaction_id is None:  # the key was taken, by this request's first try or by another request
                # Committed, and so visible here: SQLite has one writer at a time, and PostgreSQL's insert waited
                # for the other transaction to end, and each statement reads what was committed before it.
                earlier = self._by_key(conn, payer_id, idempotency_key or "")
                if earlier is None:
                    raise RuntimeError("an idempotency key in use, but by no transaction this one can see")
                return _transaction_json(conn, _replayed(earlier, request_hash), payer_id), True
            payer = self.account_id(conn, payer_id, WALLET)
            payee = self.account_id(conn, payee_id, WALLET)
            _write_legs(conn, transaction_id, [Leg(payer, -amount, guarded=True), Leg(payee, amount, guarded=True)])
            done = {"id": transaction_id, "kind": "transfer", "amount": -amount, "note": note, "created_at": iso(now)}
            return {**done, "counterparty_id": payee_id, "reverses": None}, False

        try:
            return self.db.write(work)
        except IntegrityError:
            # The insert above absorbs a key already used; should a conflict still surface (another
            # writer of the same table, another isolation level), answer as the retry when there is one.
            earlier = self.db.read(lambda conn: self._by_key(conn, payer_id, idempotency_key or ""))
            if earlier is None:
                raise
            return self.transaction(_replayed(earlier, request_hash), payer_id), True

    def credit(self, user_id: int, amount: int, kind: str, note: str = "", *, source: str = EXTERNAL) -> int:
        """Move ``amount`` from a system account (``external`` by default) into the user's wallet; returns the transaction id."""
        if amount <= 0:
            raise ValueError("a credit is a positive amount")

        def work(conn: Connection) -> int:
            legs = [Leg(self.account_id(conn, None, source), -amount, guarded=False), Leg(self.account_id(conn, user_id, WALLET), amount, True)]
            return self.post(conn, kind, legs, actor_id=None, note=note)

        return self.db.write(work)

    def reverse(self, transaction_id: int, actor_id: int | None, note: str = "") -> int:
        """Undo a transaction with a new one of opposite entries; 409 when it would overdraw an account."""

        def work(conn: Connection) -> int:
            original = conn.execute(select(entries).where(entries.c.transaction_id == transaction_id)).all()
            if not original:
                raise ApiError(404, "not_found", "No such transaction.")
            owned = {row.id for row in conn.execute(select(accounts.c.id).where(accounts.c.user_id.is_not(None))).all()}
            legs = [Leg(row.account_id, -row.amount, guarded=row.account_id in owned) for row in original]
            return self.post(conn, "reversal", legs, actor_id=actor_id, note=note, reverses_id=transaction_id)

        return self.db.write(work)

    # Reading ---------------------------------------------------------------------------

    def transaction(self, transaction_id: int, viewer_id: int) -> dict[str, Any]:
        """One transaction as the API shows it to ``viewer_id``."""
        return self.db.read(lambda conn: _transaction_json(conn, transaction_id, viewer_id))

    def history(self, user_id: int, cursor: str | None, limit: int) -> Page:
        """The user's transactions, newest first, as API objects."""
        after = decode_cursor(cursor, int)

        def work(conn: Connection) -> Page:
            mine = select(accounts.c.id).where(accounts.c.user_id == user_id).scalar_subquery()
            condition: ColumnElement[bool] = entries.c.account_id.in_(mine)
            if after:
                condition = and_(condition, entries.c.transaction_id < after[0])
            query = select(entries.c.transaction_id).where(condition).distinct().order_by(entries.c.transaction_id.desc())
            ids = list(conn.execute(query.limit(limit + 1)).scalars())
            more = len(ids) > limit
            ids = ids[:limit]
            return Page([_transaction_json(conn, tid, user_id) for tid in ids], encode_cursor(ids[-1]) if more else None)

        return self.db.read(work)

    def audit(self) -> list[str]:
        """Every breach of the ledger's invariants, in words; empty when the books are sound."""

        def work(conn: Connection) -> list[str]:
            breaches = []
            unbalanced = conn.execute(
                select(entries.c.transaction_id, func.sum(entries.c.amount)).group_by(entries.c.transaction_id).having(func.sum(entries.c.amount) != 0)
            ).all()
            breaches += [f"transaction {tid} sums to {total}, not 0" for tid, total in unbalanced]
            empty = conn.execute(select(transactions.c.id).where(~transactions.c.id.in_(select(entries.c.transaction_id)))).scalars().all()
            breaches += [f"transaction {tid} has no entries" for tid in empty]
            sums = dict(conn.execute(select(entries.c.account_id, func.sum(entries.c.amount)).group_by(entries.c.account_id)).all())
            for row in conn.execute(select(accounts)).all():
                if row.balance != sums.get(row.id, 0):
                    breaches.append(f"account {row.id} shows {row.balance} but its entries sum to {sums.get(row.id, 0)}")
                if row.user_id is not None and row.balance < 0:
                    breaches.append(f"account {row.id} of user {row.user_id} is below zero: {row.balance}")
            total = conn.execute(select(func.coalesce(func.sum(entries.c.amount), 0))).scalar_one()
            if total != 0:
                breaches.append(f"the ledger sums to {total}, not 0")
            return breaches

        return self.db.read(work)

    @staticmethod
    def _by_key(conn: Connection, actor_id: int, key: str) -> Any:
        query = select(transactions.c.id, transactions.c.request_hash).where(
            transactions.c.actor_id == actor_id, transactions.c.idempotency_key == key
        )
        return conn.execute(query).first()


def _check_balanced(legs: list[Leg]) -> None:
    if sum(leg.amount for leg in legs) != 0 or not legs:
        raise ValueError("a transaction's entries must sum to zero")


def _write_legs(conn: Connection, transaction_id: int, legs: list[Leg]) -> None:
    """Move each leg's account balance (a guarded debit only if it stays at or above zero) and insert its entry.

    Accounts in id order: two transactions crossing each other lock them in
    the same order, never deadlock. 409 ``insufficient_funds`` when a
    guarded debit did not apply: the caller's database transaction rolls back.
    """
    moves = [
        {"account": leg.account_id, "amount": leg.amount, "unguarded": not (leg.guarded and leg.amount < 0)}
        for leg in sorted(legs, key=lambda leg: leg.account_id)
    ]
    if conn.dialect.supports_sane_multi_rowcount:  # the batch's rowcount adds up its statements' (sqlite3, psycopg)
        moved = conn.execute(_MOVE, moves).rowcount
    else:
        moved = sum(conn.execute(_MOVE, move).rowcount for move in moves)
    if moved != len(moves):
        raise insufficient_funds()
    values: dict[str, Any] = {"transaction": transaction_id}
    for number, leg in enumerate(legs):
        values[f"account_{number}"], values[f"amount_{number}"] = leg.account_id, leg.amount
    conn.execute(_insert_entries(len(legs)), values)


def _hash(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _replayed(earlier: Any, request_hash: str | None) -> int:
    if earlier.request_hash != request_hash:
        raise ApiError(409, "idempotency_conflict", "idempotency_key: already used for a different request.", field="idempotency_key")
    return earlier.id


def _transaction_json(conn: Connection, transaction_id: int, viewer_id: int) -> dict[str, Any]:
    head = conn.execute(select(transactions).where(transactions.c.id == transaction_id)).one()
    rows = conn.execute(
        select(entries.c.amount, accounts.c.user_id, accounts.c.kind)
        .join(accounts, accounts.c.id == entries.c.account_id)
        .where(entries.c.transaction_id == transaction_id)
    ).all()
    mine = sum(row.amount for row in rows if row.user_id == viewer_id and row.kind == WALLET)
    others = [row.user_id for row in rows if row.user_id not in (None, viewer_id)]
    return {
        "id": head.id,
        "kind": head.kind,
        "amount": mine,
        "note": head.note,
        "created_at": iso(head.created_at),
        "counterparty_id": others[0] if others else None,
        "reverses": head.reverses_id,
    }
