"""The billing provider interface: who takes the money for subscriptions and top-ups.

Two providers implement it: ``sandbox`` (:mod:`plugins.payments.sandbox_billing`,
the embedded default, a checkout page in the app taking test cards) and
``stripe`` (:mod:`plugins.payments.stripe_billing`). Both turn what happens
at the provider into :class:`BillingEvent` objects that
:class:`plugins.payments.billing_service.Billing` applies the same way, so
the rest of the plugin never asks which provider it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# A subscription in these states holds its plan; past_due holds it until the grace period ends.
LIVE_STATUSES = ("active", "trialing", "past_due")
PAYING_STATUSES = ("active", "trialing")


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as its provider sees it at ``observed_at``."""

    provider: str
    subscription_id: str
    customer_id: str | None
    # Our checkout that made it, as the provider's record names it (the metadata we gave it).
    checkout_id: str | None
    # None when the provider's price matches no plan of the deployment.
    plan: str | None
    # The provider's words: incomplete, trialing, active, past_due, unpaid, canceled…
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    observed_at: datetime


@dataclass(frozen=True)
class BillingEvent:
    """One thing that happened at the provider, already verified, with what it means here.

    ``id`` is the provider's event id: recorded with the event's effect, so a
    replay changes nothing. ``checkout_id`` names our checkout the event
    completes (a subscription bought or a top-up paid); ``subscription`` is
    the subscription's state as read for this event.
    """

    provider: str
    id: str
    type: str
    subscription: SubscriptionState | None = None
    checkout_id: str | None = None
    # For a top-up: the amount the provider says was paid, in minor units.
    paid_amount: int | None = None
    # The subscription counts only if this event completes its checkout (the sandbox's card
    # page, where a second payment of one checkout must not make a second subscription).
    requires_checkout: bool = False


@dataclass(frozen=True)
class CheckoutRequest:
    """What a provider needs to open a checkout for one of our checkout records."""

    checkout_id: str
    user_id: int
    username: str
    purpose: str  # "subscription" or "topup"
    plan: str | None
    plan_title: str
    amount: int
    currency: str
    interval: str | None
    customer_id: str | None
    success_url: str
    cancel_url: str


class BillingProvider(Protocol):
    """What a billing provider does. Blocking methods: run them off the event loop."""

    name: str

    def open_checkout(self, request: CheckoutRequest) -> tuple[str, str | None]:
        """Open a checkout at the provider; returns (the page to send the user to, the provider's session id)."""
        ...

    def close_checkout(self, provider_ref: str) -> None:
        """Make a checkout opened earlier unpayable at the provider (best effort: it may be paid already)."""
        ...

    def portal_url(self, customer_id: str | None, return_url: str) -> str:
        """Where the subscriber manages their subscription (change plan, card, cancel)."""
        ...

    def set_cancel_at_period_end(self, subscription_id: str, cancel: bool) -> SubscriptionState | None:
        """Cancel at the end of the period (or take that back); returns the new state, or None when the provider answers by event."""
        ...

    def refresh(self, subscription_id: str) -> SubscriptionState | None:
        """Re-read a subscription at the provider (None when the provider keeps no state apart from ours)."""
        ...
