"""Checkouts: one purchase in progress — a plan's subscription or a wallet top-up — until the provider says it is paid.

The checkout's random id is the sandbox checkout page's address and travels
to Stripe as metadata, so whichever event reports the payment names it.
Completing a checkout is one conditional UPDATE (to completed) in the
same transaction as its effect, so a top-up reported twice (Checkout's
event and the PaymentIntent's) credits the wallet once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, select

from kernel import ApiError, iso, utcnow
from plugins.payments.ledger import EXTERNAL, WALLET, Ledger, Leg
from plugins.payments.models import checkouts

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from kernel import Database

logger = logging.getLogger("everything.payments")

SUBSCRIPTION, TOPUP = "subscription", "topup"
OPEN, COMPLETED, EXPIRED = "open", "completed", "expired"


def not_found() -> ApiError:
    return ApiError(404, "not_found", "There is no such checkout.")


class Checkouts:
    """The checkout records of one deployment. Blocking: run off the event loop."""

    def __init__(self, db: Database, ledger: Ledger) -> None:
        self.db = db
        self.ledger = ledger

    def create(self, user_id: int, provider: str, purpose: str, amount: int, currency: str, plan: str | None = None) -> Any:
        """Open a checkout for the user; returns its record."""
        row = {
            "id": secrets.token_hex(16),
            "user_id": user_id,
            "provider": provider,
            "purpose": purpose,
            "plan": plan,
            "amount": amount,
            "currency": currency,
            "status": OPEN,
            "provider_ref": None,
            "created_at": utcnow(),
            "completed_at": None,
            "transaction_id": None,
        }
        self.db.write(lambda conn: conn.execute(checkouts.insert().values(row)))
        return SimpleNamespace(**row)

    def set_provider_ref(self, checkout_id: str, ref: str) -> None:
        """Remember the provider's session id for the checkout."""
        self.db.write(lambda conn: conn.execute(checkouts.update().where(checkouts.c.id == checkout_id).values(provider_ref=ref)))

    def expire(self, older_than: timedelta) -> int:
        """Close checkouts left open longer than ``older_than`` (Stripe's own sessions last 24 hours); returns how many."""
        stale = (checkouts.c.status == OPEN) & (checkouts.c.created_at < utcnow() - older_than)
        return self.db.write(lambda conn: conn.execute(checkouts.update().where(stale).values(status=EXPIRED)).rowcount)

    def get(self, checkout_id: str, user_id: int | None = None) -> Any:
        """The checkout (only the user's own when ``user_id`` is given); 404 otherwise."""
        condition = checkouts.c.id == checkout_id
        if user_id is not None:
            condition = condition & (checkouts.c.user_id == user_id)
        row = self.db.read(lambda conn: conn.execute(select(checkouts).where(condition)).first())
        if row is None:
            raise not_found()
        return row

    def close_open(self, user_id: int, purpose: str) -> Sequence[Row[Any]]:
        """Expire the user's open checkouts for ``purpose`` (a new one replaces them); returns those closed."""
        mine = (checkouts.c.user_id == user_id) & (checkouts.c.purpose == purpose) & (checkouts.c.status == OPEN)

        def work(conn: Connection) -> Sequence[Row[Any]]:
            found = conn.execute(select(checkouts).where(mine)).all()
            conn.execute(checkouts.update().where(mine).values(status=EXPIRED))
            return found

        return self.db.write(work)

    def complete(self, conn: Connection, checkout_id: str, paid_amount: int | None = None) -> Any:
        """Mark the checkout paid inside ``conn``'s transaction, crediting a top-up to the wallet.

        An expired checkout is completed too: the provider took the money
        (a payment that settled late), and that wins over our clock. A
        top-up credits what the provider says was paid. Returns the
        checkout's row when this call completed it, None when it was
        completed before or is unknown (nothing happens then).
        """
        row = conn.execute(select(checkouts).where(checkouts.c.id == checkout_id)).first()
        if row is None or row.status == COMPLETED:
            return None
        amount = paid_amount if row.purpose == TOPUP and paid_amount is not None else row.amount
        if amount != row.amount:
            logger.warning("billing: checkout %s was for %s but %s was paid; crediting what was paid", checkout_id, row.amount, amount)
        won = conn.execute(
            checkouts.update()
            .where(checkouts.c.id == checkout_id, checkouts.c.status != COMPLETED)
            .values(status=COMPLETED, completed_at=utcnow(), amount=amount)
        ).rowcount
        if won != 1:
            return None
        if row.purpose == TOPUP and amount > 0:
            legs = [
                Leg(self.ledger.account_id(conn, None, EXTERNAL), -amount, guarded=False),
                Leg(self.ledger.account_id(conn, row.user_id, WALLET), amount, guarded=True),
            ]
            transaction_id = self.ledger.post(conn, "topup", legs, actor_id=row.user_id, note="Top-up")
            conn.execute(checkouts.update().where(checkouts.c.id == checkout_id).values(transaction_id=transaction_id))
        return conn.execute(select(checkouts).where(checkouts.c.id == checkout_id)).one()


def checkout_json(row: Any, checkout_url: str | None = None) -> dict[str, Any]:
    """The API's view of a checkout."""
    found = {
        "id": row.id,
        "purpose": row.purpose,
        "plan": row.plan,
        "amount": row.amount,
        "currency": row.currency,
        "status": row.status,
        "created_at": iso(row.created_at),
        "completed_at": iso(row.completed_at) if row.completed_at else None,
        "transaction_id": row.transaction_id,
    }
    return found | ({"checkout_url": checkout_url} if checkout_url else {})
