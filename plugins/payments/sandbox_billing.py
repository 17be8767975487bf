"""The sandbox billing provider, the embedded default: a checkout page inside the app that takes test cards.

So that a fresh install can go premium without an account anywhere. It
plays Stripe's part with Stripe's test cards — 4242 4242 4242 4242 pays,
4000 0000 0000 0002 is declined — and reports what happens as the same
:class:`BillingEvent` objects a Stripe webhook becomes, so subscriptions and
top-ups run through exactly the code they run through with Stripe. The
sandbox keeps no state of its own: the subscription rows are its records,
and a renewal (which always pays) is the periodic look at a period's end.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import secrets
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from kernel import ApiError, utcnow
from plugins.payments.billing import PAYING_STATUSES, BillingEvent, CheckoutRequest, SubscriptionState
from plugins.payments.checkouts import SUBSCRIPTION
from plugins.payments.models import subscriptions

if TYPE_CHECKING:
    from kernel import Kernel

NAME = "sandbox"
PAYS = "4242424242424242"
DECLINED = "4000000000000002"


def add_interval(moment: datetime, interval: str) -> datetime:
    """``moment`` one month or one year later, on the same day where the month has it (Jan 31 → Feb 28)."""
    months = 12 if interval == "year" else 1
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def check_card(number: str, expiry: str, cvc: str, now: datetime) -> str:
    """The card number's digits, or a 422/402 as a card form shows it next to the field."""
    digits = re.sub(r"[\s-]", "", number)
    if not re.fullmatch(r"\d{12,19}", digits) or not _luhn_ok(digits):
        raise ApiError(422, "invalid_card", "card_number: this is not a valid card number.", field="card_number")
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", expiry)
    if match is None or not 1 <= int(match[1]) <= 12:
        raise ApiError(422, "invalid_expiry", "expiry: give the month and year as MM/YY.", field="expiry")
    year = int(match[2]) + (2000 if len(match[2]) == 2 else 0)
    if (year, int(match[1])) < (now.year, now.month):
        raise ApiError(422, "card_expired", "expiry: this card has expired.", field="expiry")
    if not re.fullmatch(r"\d{3,4}", cvc.strip()):
        raise ApiError(422, "invalid_cvc", "cvc: the 3 or 4 digits on the back of the card.", field="cvc")
    if digits == DECLINED:
        raise ApiError(402, "card_declined", "card_number: your card was declined.", field="card_number")
    if digits != PAYS:
        raise ApiError(422, "test_card_only", "card_number: this is a sandbox; pay with the test card 4242 4242 4242 4242.", field="card_number")
    return digits


def _event_id() -> str:
    return f"evt_sandbox_{secrets.token_hex(12)}"


def renewal_event_id(kind: str, subscription_id: str, period_end: datetime | None) -> str:
    """The id of what happens to a subscription at a period's end: the same in every process that sees it.

    Two processes that both renew one subscription for one period make one
    event id, and the event is applied once (``payments_billing_events`` is
    unique on it): one ``invoice.paid`` per renewal, whoever looks.
    """
    stamp = period_end.replace(tzinfo=None).isoformat() if period_end is not None else "-"
    digest = hashlib.sha256(f"{kind}|{subscription_id}|{stamp}".encode()).hexdigest()[:24]
    return f"evt_sandbox_{digest}"


class SandboxBilling:
    """The :class:`plugins.payments.billing.BillingProvider` that needs no account anywhere."""

    name = NAME

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def open_checkout(self, request: CheckoutRequest) -> tuple[str, str | None]:
        return f"/payments/checkout/{request.checkout_id}", None

    def close_checkout(self, provider_ref: str) -> None:
        pass  # the sandbox's checkout is our own record, closed already

    def portal_url(self, customer_id: str | None, return_url: str) -> str:
        return "/payments/subscription"

    def pay(self, checkout: Any, number: str, expiry: str, cvc: str) -> BillingEvent:
        """Charge a test card for ``checkout``: the event a paid Checkout Session becomes, or a 402/422 refusal."""
        now = utcnow()
        check_card(number, expiry, cvc, now)
        state = None
        if checkout.purpose == SUBSCRIPTION:
            plan = self.kernel.entitlements.catalog.plans[checkout.plan]
            state = SubscriptionState(
                provider=NAME,
                subscription_id=f"sub_sandbox_{secrets.token_hex(12)}",
                customer_id=f"cus_sandbox_{checkout.user_id}",
                checkout_id=checkout.id,
                plan=checkout.plan,
                status="active",
                current_period_end=add_interval(now.replace(microsecond=0), plan.interval),
                cancel_at_period_end=False,
                observed_at=now,
            )
        return BillingEvent(NAME, _event_id(), "checkout.session.completed", state, checkout.id, checkout.amount, requires_checkout=True)

    def set_cancel_at_period_end(self, subscription_id: str, cancel: bool) -> SubscriptionState | None:
        state = self._state(subscription_id)
        return replace(state, cancel_at_period_end=cancel, observed_at=utcnow()) if state else None

    def refresh(self, subscription_id: str) -> SubscriptionState | None:
        """At the end of a period: renew (the test card always pays) or, when cancelled, end."""
        state = self._state(subscription_id)
        now = utcnow()
        if state is None or state.status not in PAYING_STATUSES or state.current_period_end is None:
            return state
        if state.current_period_end > now + timedelta(hours=1):
            return state
        if state.cancel_at_period_end:
            return replace(state, status="canceled", observed_at=now) if state.current_period_end <= now else state
        plan = self.kernel.entitlements.catalog.plans.get(state.plan or "")
        return replace(state, current_period_end=add_interval(state.current_period_end, plan.interval if plan else "month"), observed_at=now)

    def renewal_event(self, state: SubscriptionState) -> BillingEvent:
        """The event a renewal or an end at the period's end becomes."""
        kind = "customer.subscription.deleted" if state.status == "canceled" else "invoice.paid"
        return BillingEvent(NAME, renewal_event_id(kind, state.subscription_id, state.current_period_end), kind, state)

    def change_event(self, state: SubscriptionState) -> BillingEvent:
        """The event a change made on the subscription page becomes."""
        return BillingEvent(NAME, _event_id(), "customer.subscription.updated", state)

    def _state(self, subscription_id: str) -> SubscriptionState | None:
        key = (subscriptions.c.provider == NAME) & (subscriptions.c.subscription_id == subscription_id)
        row = self.kernel.db.read(lambda conn: conn.execute(select(subscriptions).where(key)).first())
        if row is None:
            return None
        return SubscriptionState(
            NAME, row.subscription_id, None, None, row.plan, row.status, row.current_period_end, row.cancel_at_period_end, row.observed_at
        )
