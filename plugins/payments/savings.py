"""Savings: a second account beside the wallet, and the daily interest it earns.

Moving money between wallet and savings is one ledger transaction with both
legs guarded, so neither side can be overdrawn. Interest for a (UTC) day is
``balance * savings_rate / 365`` on the account's closing balance that day,
paid from the ``interest`` system account. The fraction of a minor unit that
flooring leaves is carried, in billionths, into the next day's interest, so
small balances still earn what they are owed over time. One row in
``payments_interest_accruals`` per account and day, unique and written in the
same database transaction as the posting, makes a day's interest happen at
most once however often (and in however many processes) the job runs.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError

from kernel import ApiError, User, inserted_id, utcnow
from plugins.payments.ledger import INTEREST, SAVINGS, WALLET, Ledger, Leg
from plugins.payments.models import accounts, entries, interest_accruals, transactions
from plugins.payments.money import money
from plugins.payments.settings import PaymentsSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# Ledger transaction kinds (at most 16 characters, the column's width).
DEPOSIT, WITHDRAW, INTEREST_KIND = "savings_deposit", "savings_withdraw", "interest"
# The carried remainder's unit: a billionth of a minor unit. Less than that is dropped each day.
NANOS = 10**9
# How far back the job catches up on days it missed (the process was down).
CATCH_UP_DAYS = 7


class Savings:
    """Savings accounts of one kernel's users: deposits, withdrawals, interest. Blocking parts run off the loop."""

    def __init__(self, ledger: Ledger, settings: PaymentsSettings) -> None:
        self.ledger = ledger
        self.db = ledger.db
        self.settings = settings

    # What a user does --------------------------------------------------------------------

    async def deposit(self, user: User, amount: int, key: str | None) -> tuple[dict[str, Any], bool]:
        """Move ``amount`` from the wallet into savings; returns (the transaction, whether it answered a retry).

        Refusals: 422 ``invalid_amount``, 409 ``insufficient_funds`` (the
        wallet holds less), 409 ``idempotency_conflict``.
        """
        self._check_amount(amount)
        return await anyio.to_thread.run_sync(self._move, user.id, DEPOSIT, amount, key)

    async def withdraw(self, user: User, amount: int, key: str | None) -> tuple[dict[str, Any], bool]:
        """Move ``amount`` from savings back into the wallet; refusals as :meth:`deposit` (savings hold less)."""
        self._check_amount(amount)
        try:
            return await anyio.to_thread.run_sync(self._move, user.id, WITHDRAW, amount, key)
        except ApiError as error:
            if error.code != "insufficient_funds":
                raise
            raise ApiError(409, "insufficient_funds", "amount: more than your savings hold.", field="amount") from None

    async def overview(self, user: User) -> dict[str, Any]:
        """``{"balance", "currency", "annual_rate", "interest_earned", "last_accrued_on"}`` of the user's savings."""
        return await anyio.to_thread.run_sync(self._overview, user.id)

    # Interest ----------------------------------------------------------------------------

    def accrue_interest(self, day: date) -> int:
        """Pay ``day``'s interest to every savings account whose closing balance that day was positive.

        Idempotent per account and day: a second run for the same day pays
        nothing. Today may be accrued (on the balance so far, and then
        today is done); a day not yet begun may not. Blocking.

        :returns: how many accounts were accrued by this run (one earning
            less than a minor unit counts: its remainder was carried).
        """
        if day > utcnow().date():
            raise ValueError(f"{day.isoformat()} has not begun: interest accrues only on days that have")
        rate = Fraction(str(self.settings.savings_rate))
        if rate == 0:
            return 0
        due = self.db.read(lambda conn: _closing_balances(conn, self.ledger.currency, day))
        accrued = 0
        for account_id, balance in due:
            try:
                self.db.write(partial(self._accrue, account_id=account_id, balance=balance, day=day, rate=rate))
            except IntegrityError:
                if not self.db.read(partial(_accrued, account_id=account_id, day=day)):
                    raise
                continue  # another run (another process) accrued this account for this day first
            accrued += 1
        return accrued

    def accrue_due(self, today: date) -> int:
        """The job's work: accrue every ended day not yet accrued, oldest first; returns the accounts accrued.

        Normally that is yesterday. After an outage it is each missed day
        since the last accrual anywhere, up to :data:`CATCH_UP_DAYS` back,
        each on its own closing balances (at the current rate).
        """
        if self.settings.savings_rate == 0:
            return 0
        last = self.db.read(lambda conn: conn.execute(select(func.max(interest_accruals.c.day))).scalar())
        first = today - timedelta(days=1) if last is None else max(last + timedelta(days=1), today - timedelta(days=CATCH_UP_DAYS))
        # A day accrued early by hand is accrued again for the accounts it missed: each call is idempotent.
        first = min(first, today - timedelta(days=1))
        days = [first + timedelta(days=offset) for offset in range((today - first).days)]
        return sum(self.accrue_interest(day) for day in days)

    def savings_amounts(self, user_id: int, transaction_ids: list[int]) -> dict[int, int]:
        """What each transaction moved on the user's savings account (for showing interest, which never touches the wallet)."""
        if not transaction_ids:
            return {}
        query = (
            select(entries.c.transaction_id, func.sum(entries.c.amount))
            .join(accounts, accounts.c.id == entries.c.account_id)
            .where(accounts.c.user_id == user_id, accounts.c.kind == SAVINGS, entries.c.transaction_id.in_(transaction_ids))
            .group_by(entries.c.transaction_id)
        )
        # int(): PostgreSQL sums a bigint as numeric.
        return {transaction_id: int(total) for transaction_id, total in self.db.read(lambda conn: conn.execute(query).all())}

    # Blocking database work ----------------------------------------------------------------

    def _check_amount(self, amount: int) -> None:
        if not 0 < amount <= self.settings.max_transfer:
            limit = money(self.settings.max_transfer, self.settings.currency)
            raise ApiError(422, "invalid_amount", f"amount: a whole number of cents from 1 to {limit}.", field="amount")

    def _move(self, user_id: int, kind: str, amount: int, key: str | None) -> tuple[dict[str, Any], bool]:
        # The kind is in the hash: the same key reused for a transfer or the other direction is a conflict.
        request_hash = hashlib.sha256(json.dumps({"kind": kind, "amount": amount}).encode()).hexdigest() if key else None

        def work(conn: Connection) -> tuple[int, bool]:
            if key is not None:
                earlier = _by_key(conn, user_id, key)
                if earlier is not None:
                    return _replayed(earlier, request_hash), True
            wallet = self.ledger.account_id(conn, user_id, WALLET)
            savings = self.ledger.account_id(conn, user_id, SAVINGS)
            # Both legs guarded: a deposit may not overdraw the wallet, nor a withdrawal the savings.
            sign = 1 if kind == DEPOSIT else -1
            legs = [Leg(wallet, -sign * amount, guarded=True), Leg(savings, sign * amount, guarded=True)]
            return self.ledger.post(conn, kind, legs, actor_id=user_id, idempotency_key=key, request_hash=request_hash), False

        try:
            transaction_id, replayed = self.db.write(work)
        except IntegrityError:
            # A concurrent request with the same key won the insert: answer as its retry.
            earlier = self.db.read(lambda conn: _by_key(conn, user_id, key or ""))
            if earlier is None:
                raise
            transaction_id, replayed = _replayed(earlier, request_hash), True
        shown = self.ledger.transaction(transaction_id, user_id)
        shown.pop("counterparty_id", None)
        return {**shown, "currency": self.settings.currency, "counterparty": None}, replayed

    def _overview(self, user_id: int) -> dict[str, Any]:
        def work(conn: Connection) -> dict[str, Any]:
            account = conn.execute(
                select(accounts.c.id, accounts.c.balance).where(
                    accounts.c.user_id == user_id, accounts.c.kind == SAVINGS, accounts.c.currency == self.ledger.currency
                )
            ).first()
            earned, last = 0, None
            if account is not None:
                totals = select(func.coalesce(func.sum(interest_accruals.c.amount), 0), func.max(interest_accruals.c.day))
                earned, last = conn.execute(totals.where(interest_accruals.c.account_id == account.id)).one()
            return {
                "balance": account.balance if account is not None else 0,
                "currency": self.settings.currency,
                "annual_rate": self.settings.savings_rate,
                "interest_earned": int(earned),
                "last_accrued_on": last.isoformat() if last is not None else None,
            }

        return self.db.read(work)

    def _accrue(self, conn: Connection, account_id: int, balance: int, day: date, rate: Fraction) -> None:
        """One account's interest for one day, in the caller's transaction. IntegrityError when already accrued."""
        table = interest_accruals.c
        # Claim the day first: a concurrent run for the same account and day stops here.
        row = {
            "account_id": account_id,
            "day": day,
            "balance": balance,
            "annual_rate": str(self.settings.savings_rate),
            "amount": 0,
            "remainder_nanos": 0,
            "created_at": utcnow(),
        }
        accrual_id = inserted_id(conn.execute(interest_accruals.insert().values(row)))
        previous = select(table.remainder_nanos).where(table.account_id == account_id, table.day < day).order_by(table.day.desc()).limit(1)
        carried = conn.execute(previous).scalar() or 0
        earned = (balance * rate * NANOS) // 365 + carried
        amount, remainder = divmod(int(earned), NANOS)
        transaction_id = None
        if amount > 0:
            # The interest account stands for the operator's money: it may go below zero.
            legs = [Leg(self.ledger.account_id(conn, None, INTEREST), -amount, guarded=False), Leg(account_id, amount, guarded=True)]
            transaction_id = self.ledger.post(conn, INTEREST_KIND, legs, actor_id=None, note=f"Interest for {day.isoformat()}")
        update = interest_accruals.update().where(table.id == accrual_id)
        conn.execute(update.values(amount=amount, remainder_nanos=remainder, transaction_id=transaction_id))


def _closing_balances(conn: Connection, currency: str, day: date) -> list[tuple[int, int]]:
    """(account id, balance at the end of ``day``) of each savings account positive then and not yet accrued for it."""
    end = datetime.combine(day + timedelta(days=1), time())
    done = select(interest_accruals.c.account_id).where(interest_accruals.c.day == day)
    balance = func.sum(entries.c.amount)
    query = (
        select(entries.c.account_id, balance)
        .join(accounts, accounts.c.id == entries.c.account_id)
        .join(transactions, transactions.c.id == entries.c.transaction_id)
        .where(
            and_(accounts.c.kind == SAVINGS, accounts.c.user_id.is_not(None), accounts.c.currency == currency),
            transactions.c.created_at < end,
            entries.c.account_id.not_in(done),
        )
        .group_by(entries.c.account_id)
        .having(balance > 0)
        .order_by(entries.c.account_id)
    )
    return [(account_id, int(total)) for account_id, total in conn.execute(query).all()]


def _accrued(conn: Connection, account_id: int, day: date) -> bool:
    query = select(interest_accruals.c.id).where(interest_accruals.c.account_id == account_id, interest_accruals.c.day == day)
    return conn.execute(query).first() is not None


def _by_key(conn: Connection, actor_id: int, key: str) -> Any:
    query = select(transactions.c.id, transactions.c.request_hash).where(transactions.c.actor_id == actor_id, transactions.c.idempotency_key == key)
    return conn.execute(query).first()


def _replayed(earlier: Any, request_hash: str | None) -> int:
    if earlier.request_hash != request_hash:
        raise ApiError(409, "idempotency_conflict", "idempotency_key: already used for a different request.", field="idempotency_key")
    return earlier.id

