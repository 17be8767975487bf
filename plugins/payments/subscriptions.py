"""Subscriptions as the provider last told us, and the plan each one grants through the kernel's entitlements.

A row is the newest reading of one provider subscription: an older reading
(an event delivered late) never overwrites a newer one. From the row alone
:func:`desired_grant` says which plan the subscriber holds and until when,
and :meth:`Subscriptions.apply` settles the kernel grant to exactly that
inside the caller's transaction, so events in any order, or twice, end in
the same place.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from kernel import iso, utcnow
from plugins.payments.billing import PAYING_STATUSES, SubscriptionState
from plugins.payments.models import billing_events, customers, subscriptions

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from kernel import Kernel

logger = logging.getLogger("everything.payments")

GRANT_SOURCE = "subscription"
# A renewal is charged around the end of the period and reported moments later:
# a paying subscriber keeps the plan this long past it while that happens.
RENEWAL_LEEWAY = timedelta(days=2)


def desired_grant(row: Any) -> tuple[str | None, datetime | None]:
    """(plan, until) that a subscription row grants: (None, None) when it grants nothing."""
    if row.plan is None:
        return None, None
    if row.status in PAYING_STATUSES:
        if row.current_period_end is None:
            return row.plan, None
        return row.plan, row.current_period_end if row.cancel_at_period_end else row.current_period_end + RENEWAL_LEEWAY
    if row.status == "past_due" and row.grace_until is not None:
        return row.plan, row.grace_until
    return None, None


class Subscriptions:
    """The subscription rows of one deployment and the grants they hold."""

    def __init__(self, kernel: Kernel, grace: timedelta) -> None:
        self.kernel = kernel
        self.grace = grace

    # Events -----------------------------------------------------------------------------

    @staticmethod
    def record_event(conn: Connection, provider: str, event_id: str, type: str) -> bool:
        """Record a provider event inside ``conn``'s transaction; False when it was recorded before (a replay)."""
        try:
            with conn.begin_nested():
                conn.execute(billing_events.insert().values(provider=provider, event_id=event_id, type=type[:64], received_at=utcnow()))
        except IntegrityError:
            return False
        return True

    # Customers --------------------------------------------------------------------------

    @staticmethod
    def customer_of(conn: Connection, user_id: int, provider: str) -> str | None:
        """The provider's customer id for the user, if they ever paid through it."""
        query = select(customers.c.customer_id).where(customers.c.user_id == user_id, customers.c.provider == provider)
        return conn.execute(query).scalar()

    @staticmethod
    def remember_customer(conn: Connection, user_id: int, provider: str, customer_id: str) -> None:
        """Link the provider's customer id to the user (once; a second link is kept as it was)."""
        try:
            with conn.begin_nested():
                values = {"user_id": user_id, "provider": provider, "customer_id": customer_id, "created_at": utcnow()}
                conn.execute(customers.insert().values(values))
        except IntegrityError:
            pass

    def _owner(self, conn: Connection, state: SubscriptionState) -> int | None:
        if state.customer_id is not None:
            query = select(customers.c.user_id).where(customers.c.provider == state.provider, customers.c.customer_id == state.customer_id)
            known = conn.execute(query).scalar()
            if known is not None:
                return known
        if state.user_id is not None and self.kernel.user_by_id(state.user_id) is not None:
            if state.customer_id is not None:
                self.remember_customer(conn, state.user_id, state.provider, state.customer_id)
            return state.user_id
        return None

    # Applying a provider's reading ----------------------------------------------------------

    def apply(self, conn: Connection, state: SubscriptionState) -> int | None:
        """Store ``state`` unless a newer reading is stored, and settle the subscriber's grant; returns their user id.

        None when the subscription belongs to no user of this deployment (it
        is then ignored: a shared Stripe account may bill other products).
        """
        key = (subscriptions.c.provider == state.provider) & (subscriptions.c.subscription_id == state.subscription_id)
        row = self.row(conn, state.provider, state.subscription_id)
        user_id = row.user_id if row is not None else self._owner(conn, state)
        if user_id is None:
            logger.warning("billing: subscription %s belongs to no user here; ignored", state.subscription_id)
            return None
        if row is not None and row.observed_at > state.observed_at:
            return user_id  # a late event: the stored reading is newer
        grace_until = row.grace_until if row is not None else None
        if state.status in PAYING_STATUSES:
            grace_until = None
        elif state.status == "past_due" and grace_until is None:
            grace_until = utcnow() + self.grace
        values = {
            "plan": state.plan,
            "status": state.status,
            "current_period_end": state.current_period_end,
            "cancel_at_period_end": state.cancel_at_period_end,
            "grace_until": grace_until,
            "observed_at": state.observed_at,
        }
        if row is None:
            base = {"user_id": user_id, "provider": state.provider, "subscription_id": state.subscription_id, "created_at": utcnow()}
            conn.execute(subscriptions.insert().values(**base, **values))
        else:
            conn.execute(subscriptions.update().where(key).values(values))
        self._settle(conn, user_id, conn.execute(select(subscriptions).where(key)).one())
        return user_id

    def _settle(self, conn: Connection, user_id: int, row: Any) -> None:
        plan, until = desired_grant(row)
        subscription_id = row.subscription_id
        if plan is not None and plan not in self.kernel.entitlements.catalog.plans:
            logger.warning("billing: subscription %s is for plan %r, which this deployment lacks", subscription_id, plan)
            plan = None
        user = self.kernel.user_by_id(user_id)
        assert user is not None
        self.kernel.entitlements.settle(conn, user, source=GRANT_SOURCE, reference=subscription_id, plan=plan, ends_at=until)

    # Reading --------------------------------------------------------------------------------

    @staticmethod
    def row(conn: Connection, provider: str, subscription_id: str) -> Any:
        """The stored subscription, or None."""
        key = (subscriptions.c.provider == provider) & (subscriptions.c.subscription_id == subscription_id)
        return conn.execute(select(subscriptions).where(key)).first()

    def current(self, conn: Connection, user_id: int) -> Any:
        """The user's subscription that matters now: a live one first, else the latest."""
        rows = conn.execute(select(subscriptions).where(subscriptions.c.user_id == user_id).order_by(subscriptions.c.id.desc())).all()
        live = [row for row in rows if desired_grant(row)[0] is not None]
        return (live or rows or [None])[0]

    def due_for_a_look(self, conn: Connection, within: timedelta) -> list[Any]:
        """Subscriptions still granting a plan whose period or grace ends within ``within``: worth a re-read."""
        horizon = utcnow() + within
        rows = conn.execute(select(subscriptions).where(subscriptions.c.status.in_(("active", "trialing", "past_due")))).all()
        return [row for row in rows if (row.grace_until or row.current_period_end or horizon) < horizon]


def subscription_json(row: Any, manage_url: str | None) -> dict[str, Any]:
    """The API's view of a subscription row (or of none)."""
    if row is None:
        return {key: None for key in _FIELDS} | {"status": "none", "active": False, "renews": False, "cancel_at_period_end": False}
    plan, until = desired_grant(row)
    return {
        "plan": row.plan,
        "status": row.status,
        "active": plan is not None,
        "provider": row.provider,
        "current_period_end": iso(row.current_period_end) if row.current_period_end else None,
        "renews": plan is not None and row.status in PAYING_STATUSES and not row.cancel_at_period_end,
        "cancel_at_period_end": row.cancel_at_period_end,
        "grace_until": iso(row.grace_until) if row.grace_until else None,
        "access_until": iso(until) if until else None,
        "manage_url": manage_url,
    }


_FIELDS = ("plan", "status", "active", "provider", "current_period_end", "renews", "cancel_at_period_end", "grace_until", "access_until", "manage_url")
