"""Billing on one kernel: checkouts for plans and top-ups, provider events applied once, and a periodic look.

``PAYMENTS.of(kernel).billing`` holds one :class:`Billing`. Every
change from the provider — a webhook, the sandbox's card page, a renewal —
becomes a :class:`BillingEvent` applied by :meth:`Billing.apply` in one
database transaction: the event's id, the checkout it completes (with the
wallet credit of a top-up) and the subscription with its kernel grant.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from kernel import ApiError, Periodic, User
from plugins.payments.billing import LIVE_STATUSES, BillingEvent, BillingProvider, CheckoutRequest, SubscriptionState
from plugins.payments.checkouts import SUBSCRIPTION, TOPUP, Checkouts, checkout_json
from plugins.payments.money import money
from plugins.payments.sandbox_billing import SandboxBilling
from plugins.payments.settings import PaymentsSettings
from plugins.payments.stripe_billing import StripeBilling
from plugins.payments.subscriptions import Applied, Subscriptions, grants_now, subscription_json

if TYPE_CHECKING:
    from kernel import Kernel
    from plugins.payments.ledger import Ledger

logger = logging.getLogger("everything.payments")

# How often the periodic look runs, and how far ahead it looks for periods and grace periods ending.
LOOK_EVERY_SECONDS = 300
LOOK_AHEAD = timedelta(hours=1)
CHECKOUT_LIFETIME = timedelta(hours=24)


class Billing:
    """Subscriptions and top-ups through the deployment's billing provider."""

    def __init__(self, kernel: Kernel, settings: PaymentsSettings, ledger: Ledger) -> None:
        self.kernel = kernel
        self.settings = settings
        self.provider: BillingProvider
        if settings.billing == "stripe":
            assert settings.stripe is not None
            self.provider = StripeBilling(kernel, settings.stripe)
        else:
            self.provider = SandboxBilling(kernel)
        self.subscriptions = Subscriptions(kernel, timedelta(days=settings.grace_days))
        self.checkouts = Checkouts(kernel.db, ledger)
        # Webhooks can be lost: this is what makes a lost renewal or cancellation converge anyway.
        self.periodic_look = Periodic("payments-billing-look", LOOK_EVERY_SECONDS, self.look, locks=kernel.job_locks)

    def base_url(self, request_base: str) -> str:
        """The deployment's public address: ``[server] base_url``, else the one the request came to."""
        return (self.kernel.settings.server.base_url or request_base).rstrip("/")

    # Starting a purchase --------------------------------------------------------------------------

    async def start_subscription(self, user: User, plan_name: str, base: str) -> dict[str, Any]:
        """Open a checkout for ``plan_name``; the checkout (with ``checkout_url``) or 422/409."""
        plan = self.kernel.entitlements.catalog.plans.get(plan_name)
        if plan is None:
            raise ApiError(422, "unknown_plan", f"plan: there is no plan '{plan_name}'.", field="plan")
        if plan.price <= 0:
            raise ApiError(422, "not_for_sale", f"plan: {plan.title} is not sold; it costs nothing or is granted by an operator.", field="plan")
        current = await self.kernel.db.aread(lambda conn: self.subscriptions.current(conn, user.id))
        if grants_now(current):
            raise ApiError(409, "already_subscribed", "You already have a subscription; change or cancel it from your plan page.")
        customer = await self.kernel.db.aread(lambda conn: self.subscriptions.customer_of(conn, user.id, self.provider.name))
        # One purchase of a plan at a time: a checkout left open in another tab can no longer be paid.
        for stale in await anyio.to_thread.run_sync(self.checkouts.close_open, user.id, SUBSCRIPTION):
            if stale.provider_ref and stale.provider == self.provider.name:
                await anyio.to_thread.run_sync(self.provider.close_checkout, stale.provider_ref)
        checkout = await anyio.to_thread.run_sync(lambda: self.checkouts.create(user.id, self.provider.name, SUBSCRIPTION, plan.price, plan.currency, plan.name))
        request = CheckoutRequest(
            checkout.id, user.id, user.username, SUBSCRIPTION, plan.name, plan.title, plan.price, plan.currency, plan.interval, customer,
            success_url=f"{base}/payments/subscription?checkout={checkout.id}",
            cancel_url=f"{base}/premium",
        )
        return await self._open(checkout, request, base)

    async def start_topup(self, user: User, amount: int, base: str) -> dict[str, Any]:
        """Open a checkout that puts ``amount`` in the user's wallet once paid."""
        low, high = self.settings.min_topup, self.settings.max_topup
        if not low <= amount <= high:
            currency = self.settings.currency
            raise ApiError(422, "invalid_amount", f"amount: from {money(low, currency)} to {money(high, currency)}, in cents.", field="amount")
        customer = await self.kernel.db.aread(lambda conn: self.subscriptions.customer_of(conn, user.id, self.provider.name))
        currency = self.settings.currency
        checkout = await anyio.to_thread.run_sync(lambda: self.checkouts.create(user.id, self.provider.name, TOPUP, amount, currency))
        request = CheckoutRequest(
            checkout.id, user.id, user.username, TOPUP, None, "Wallet top-up", amount, currency, None, customer,
            success_url=f"{base}/payments/?topup={checkout.id}",
            cancel_url=f"{base}/payments/",
        )
        return await self._open(checkout, request, base)

    async def _open(self, checkout: Any, request: CheckoutRequest, base: str) -> dict[str, Any]:
        url, ref = await anyio.to_thread.run_sync(self.provider.open_checkout, request)
        if ref:
            await anyio.to_thread.run_sync(self.checkouts.set_provider_ref, checkout.id, ref)
        return checkout_json(checkout, f"{base}{url}" if url.startswith("/") else url)

    # Applying what the provider says ------------------------------------------------------------

    async def apply(self, event: BillingEvent) -> bool:
        """Apply a provider event once; False when it was applied before (a replay, which changes nothing).

        409 ``already_subscribed`` (and nothing written) when the event would
        give a sandbox subscriber a second live subscription.
        """

        def work(conn: Any) -> tuple[Any, Applied | None] | None:
            if not self.subscriptions.record_event(conn, event.provider, event.id, event.type):
                return None
            completed = self.checkouts.complete(conn, event.checkout_id, event.paid_amount) if event.checkout_id else None
            state = event.subscription
            if event.requires_checkout:
                if completed is None:
                    state = None
                elif state is not None and grants_now(self.subscriptions.current(conn, completed.user_id)):
                    raise ApiError(409, "already_subscribed", "You already have a subscription; change or cancel it from your plan page.")
            return completed, self.subscriptions.apply(conn, state) if state is not None else None

        done = await self.kernel.db.awrite(work)
        if done is None:
            return False
        completed, applied = done
        await self._after(applied)
        if completed is not None:
            await self._tell_completed(completed, applied)
        return True

    async def apply_state(self, state: SubscriptionState) -> None:
        """Store a subscription state read from the provider outside any event (after a change made here)."""
        await self._after(await self.kernel.db.awrite(lambda conn: self.subscriptions.apply(conn, state)))

    async def _after(self, applied: Applied | None) -> None:
        if applied is None:
            return
        await self.kernel.grants_changed(applied.user_id)
        if applied.grace_started:
            await self._tell_payment_failed(applied.user_id)

    async def _tell_completed(self, checkout: Any, applied: Applied | None) -> None:
        user = await anyio.to_thread.run_sync(self.kernel.user_by_id, checkout.user_id)
        if user is None:
            return
        if checkout.purpose == TOPUP:
            shown = money(checkout.amount, checkout.currency)
            await self.kernel.notifications.notify(user, "payments.topup", f"{shown} was added to your wallet.", url="/payments/", data={"amount": checkout.amount})
            message = {"type": "payments.received", "transaction_id": checkout.transaction_id, "amount": checkout.amount, "from": None, "note": "Top-up"}
            await self.kernel.realtime.send_to_user(user, message)
        elif applied is not None and applied.grants and not applied.was_granting:
            plan = self.kernel.entitlements.catalog.plans.get(checkout.plan or "")
            title = plan.title if plan else checkout.plan
            await self.kernel.notifications.notify(user, "payments.subscribed", f"Welcome to {title}! Your subscription is active.", url="/payments/subscription")

    async def _tell_payment_failed(self, user_id: int) -> None:
        row = await self.kernel.db.aread(lambda conn: self.subscriptions.current(conn, user_id))
        user = await anyio.to_thread.run_sync(self.kernel.user_by_id, user_id)
        if user is not None and row is not None and row.grace_until is not None:
            text = f"Your subscription payment failed. Update your card by {row.grace_until:%B %d} to keep your plan."
            await self.kernel.notifications.notify(user, "payments.payment_failed", text, url="/payments/subscription")

    # The subscriber's own changes -------------------------------------------------------------------

    async def subscription(self, user: User) -> dict[str, Any]:
        """``GET /api/payments/subscription``: the plan, status, renewal date and where to manage it."""
        row = await self.kernel.db.aread(lambda conn: self.subscriptions.current(conn, user.id))
        manage = None
        if row is not None:
            manage = "/payments/subscription" if row.provider != "stripe" else "/payments/subscription/portal"
        return subscription_json(row, manage)

    async def set_cancel(self, user: User, cancel: bool) -> dict[str, Any]:
        """Cancel the live subscription at the end of its period (or take that back); 409 ``no_subscription``."""
        row = await self.kernel.db.aread(lambda conn: self.subscriptions.current(conn, user.id))
        if row is None or row.status not in LIVE_STATUSES or not grants_now(row):
            raise ApiError(409, "no_subscription", "You have no subscription to change.")
        if row.provider != self.provider.name:
            raise ApiError(409, "provider_changed", "This subscription was made through another provider; an operator can end it.")
        state = await anyio.to_thread.run_sync(self.provider.set_cancel_at_period_end, row.subscription_id, cancel)
        if state is not None:
            await self.apply_state(state)
        return await self.subscription(user)

    async def portal_url(self, user: User, return_url: str) -> str:
        """Where the subscriber manages their subscription at the provider."""
        customer = await self.kernel.db.aread(lambda conn: self.subscriptions.customer_of(conn, user.id, self.provider.name))
        return await anyio.to_thread.run_sync(self.provider.portal_url, customer, return_url)

    # The periodic look ---------------------------------------------------------------------------------

    async def look(self) -> int:
        """Re-read subscriptions whose period or grace ends soon (the sandbox renews them) and expire old checkouts.

        Webhooks can be lost; this is what makes a lost renewal or
        cancellation converge anyway. Returns how many subscriptions were re-read.
        """
        due = await self.kernel.db.aread(lambda conn: self.subscriptions.due_for_a_look(conn, LOOK_AHEAD))
        for row in due:
            if row.provider != self.provider.name:
                continue
            try:
                state = await anyio.to_thread.run_sync(self.provider.refresh, row.subscription_id)
            except ApiError:
                logger.warning("billing: could not re-read subscription %s; trying again later", row.subscription_id)
                continue
            if state is None:
                continue
            if isinstance(self.provider, SandboxBilling):
                if (state.status, state.current_period_end) != (row.status, row.current_period_end):
                    await self.apply(self.provider.renewal_event(state))
                else:
                    await self.apply_state(state)  # a grace period ran out: settle the grant
            else:
                await self.apply_state(state)
        await anyio.to_thread.run_sync(self.checkouts.expire, CHECKOUT_LIFETIME)
        return len(due)
