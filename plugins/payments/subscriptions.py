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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from kernel import iso, utcnow
from plugins.payments.billing import PAYING_STATUSES, SubscriptionState
from plugins.payments.models import billing_events, checkouts, customers, subscriptions

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from kernel import Kernel

logger = logging.getLogger("everything.payments")

GRANT_SOURCE = "subscription"
# A renewal is charged around the end of the period and reported moments later:
# a paying subscriber keeps the plan this long past it while that happens.
RENEWAL_LEEWAY = timedelta(days=2)


def desired_grant(row: Any) -> tuple[str | None, datetime | None]:
    """(plan, until) that a subscription row grants, always with an end: (None, None) when it grants nothing."""
    if row.plan is None:
        return None, None
    if row.status in PAYING_STATUSES and row.current_period_end is not None:
        return row.plan, row.current_period_end if row.cancel_at_period_end else row.current_period_end + RENEWAL_LEEWAY
    if row.status == "past_due" and row.grace_until is not None:
        return row.plan, row.grace_until
    return None, None


def grants_now(row: Any) -> bool:
    """Whether the subscription row holds its plan at this moment."""
    plan, until = desired_grant(row) if row is not None else (None, None)
    return plan is not None and until is not None and until > utcnow()


@dataclass(frozen=True)
class Applied:
    """What applying a reading did: whose subscription, whether a grace period began, and the grant before and after."""

    user_id: int
    grace_started: bool
    was_granting: bool
    grants: bool


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
        if state.checkout_id is not None:
            # Our own checkout, named in the metadata we gave the provider: never a user id taken
            # from the provider's records, which on a shared account other products also write.
            query = select(checkouts.c.user_id).where(checkouts.c.id == state.checkout_id, checkouts.c.provider == state.provider)
            user_id = conn.execute(query).scalar()
            if user_id is not None and state.customer_id is not None:
                self.remember_customer(conn, user_id, state.provider, state.customer_id)
            return user_id
        return None

    # Applying a provider's reading ----------------------------------------------------------

    def apply(self, conn: Connection, state: SubscriptionState) -> Applied | None:
        """Store ``state`` unless a newer reading is stored, and settle the subscriber's grant.

        None when the subscription belongs to no user of this deployment (it
        is then ignored: a shared Stripe account may bill other products).
        The row is locked for the rest of the transaction, so two events
        about one subscription apply one after the other, each comparing its
        reading with the other's.
        """
        key = (subscriptions.c.provider == state.provider) & (subscriptions.c.subscription_id == state.subscription_id)
        row = self.row(conn, state.provider, state.subscription_id, lock=True)
        user_id = row.user_id if row is not None else self._owner(conn, state)
        if user_id is None:
            logger.warning("billing: subscription %s belongs to no user here; ignored", state.subscription_id)
            return None
        if row is None:
            base = {
                "user_id": user_id,
                "provider": state.provider,
                "subscription_id": state.subscription_id,
                "plan": state.plan,
                "status": "incomplete",
                "current_period_end": None,
                "cancel_at_period_end": False,
                "grace_until": None,
                "observed_at": datetime.min,
                "created_at": utcnow(),
            }
            try:
                with conn.begin_nested():
                    conn.execute(subscriptions.insert().values(base))
            except IntegrityError:
                pass  # another event about it made the row first: apply after it
            row = self.row(conn, state.provider, state.subscription_id, lock=True)
        was_granting = grants_now(row)
        if row.observed_at > state.observed_at:
            return Applied(row.user_id, False, was_granting, was_granting)  # a late event: the stored reading is newer
        grace_until = row.grace_until
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
        conn.execute(subscriptions.update().where(key).values(values))
        stored = self.row(conn, state.provider, state.subscription_id)
        self._settle(conn, row.user_id, stored)
        return Applied(row.user_id, grace_until is not None and row.grace_until is None, was_granting, grants_now(stored))

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
    def row(conn: Connection, provider: str, subscription_id: str, lock: bool = False) -> Any:
        """The stored subscription, or None; with ``lock``, locked until the transaction ends (PostgreSQL)."""
        key = (subscriptions.c.provider == provider) & (subscriptions.c.subscription_id == subscription_id)
        query = select(subscriptions).where(key)
        return conn.execute(query.with_for_update() if lock else query).first()

    def current(self, conn: Connection, user_id: int) -> Any:
        """The user's subscription that matters now: a live one first, else the latest."""
        rows = conn.execute(select(subscriptions).where(subscriptions.c.user_id == user_id).order_by(subscriptions.c.id.desc())).all()
        live = [row for row in rows if grants_now(row)]
        return next(iter(live or rows), None)

    def due_for_a_look(self, conn: Connection, within: timedelta) -> list[Any]:
        """Live subscriptions whose period (or grace period) ends within ``within``, or ended while the grant lasts.

        Worth a re-read: a renewal or a cancellation whose event was lost. A
        subscription whose grant has run out is left alone rather than asked
        about for ever.
        """
        now = utcnow()
        rows = conn.execute(select(subscriptions).where(subscriptions.c.status.in_(("active", "trialing", "past_due")))).all()
        due = []
        for row in rows:
            moment = row.grace_until if row.status == "past_due" else row.current_period_end
            if moment is not None and now - RENEWAL_LEEWAY < moment < now + within:
                due.append(row)
        return due


def subscription_json(row: Any, manage_url: str | None) -> dict[str, Any]:
    """The API's view of a subscription row (or of none)."""
    if row is None:
        return {key: None for key in _FIELDS} | {"status": "none", "active": False, "renews": False, "cancel_at_period_end": False}
    until = desired_grant(row)[1]
    active = grants_now(row)
    return {
        "plan": row.plan,
        "status": row.status,
        "active": active,
        "provider": row.provider,
        "current_period_end": iso(row.current_period_end) if row.current_period_end else None,
        "renews": active and row.status in PAYING_STATUSES and not row.cancel_at_period_end,
        "cancel_at_period_end": row.cancel_at_period_end,
        "grace_until": iso(row.grace_until) if row.grace_until else None,
        "access_until": iso(until) if until else None,
        "manage_url": manage_url,
    }


_FIELDS = ("plan", "status", "active", "provider", "current_period_end", "renews", "cancel_at_period_end", "grace_until", "access_until", "manage_url")
