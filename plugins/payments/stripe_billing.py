"""The Stripe billing provider, through the official ``stripe`` library.

- Checkout Sessions: ``subscription`` mode for a plan, ``payment`` mode for a
  top-up; both carry ``client_reference_id`` (the user's id) and our
  checkout id in ``metadata``, so the events that report them name both.
- The Customer Portal for changing plan, card or cancelling.
- Webhooks: the signature is verified on the raw body (``Stripe-Signature``,
  HMAC-SHA256 of ``<t>.<body>`` under the endpoint's secret, within
  ``tolerance_seconds``). An event about a subscription is never trusted for
  its state: the subscription is read again from Stripe, so events that
  arrive late, twice or out of order all end in Stripe's current truth.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import stripe

from kernel import ApiError, utcnow
from plugins.payments.billing import BillingEvent, CheckoutRequest, SubscriptionState
from plugins.payments.checkouts import TOPUP
from plugins.payments.settings import StripeSettings

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams, SessionCreateParamsLineItem, SessionCreateParamsLineItemPriceData

    from kernel import Kernel

logger = logging.getLogger("everything.payments")

NAME = "stripe"
SUBSCRIPTION_EVENTS = ("customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted")
INVOICE_EVENTS = ("invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed")
CHECKOUT_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


def _moment(timestamp: int | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None) if timestamp else None


def _id(value: Any) -> str | None:
    """An id from a field that is either the id or the expanded object."""
    return value.get("id") if isinstance(value, dict) else value


def _is_price_of(price: dict[str, Any], plan: Any) -> bool:
    """Whether a Stripe price (or legacy plan) object charges what ``plan`` costs, per its interval."""
    amount = price.get("unit_amount", price.get("amount"))
    interval = (price.get("recurring") or {}).get("interval") or price.get("interval")
    return amount == plan.price and (price.get("currency") or "").upper() == plan.currency and interval == plan.interval


def _provider_error(error: stripe.StripeError) -> ApiError:
    logger.warning("stripe: %s", error)
    return ApiError(502, "provider_error", "The payment provider did not answer as expected; try again in a moment.")


class StripeBilling:
    """The :class:`plugins.payments.billing.BillingProvider` backed by a Stripe account."""

    name = NAME

    def __init__(self, kernel: Kernel, settings: StripeSettings) -> None:
        self.kernel = kernel
        self.settings = settings
        self.client = stripe.StripeClient(
            settings.secret_key.get_secret_value(),
            base_addresses={"api": settings.api_base} if settings.api_base else {},
            max_network_retries=2,
        )
        self.price_of_plan = {plan: price if isinstance(price, str) else price[0] for plan, price in settings.prices.items() if price}
        self.plan_of_price = {
            price: plan for plan, prices in settings.prices.items() for price in ([prices] if isinstance(prices, str) else prices)
        }

    # Checkout and the portal ------------------------------------------------------------------

    def open_checkout(self, request: CheckoutRequest) -> tuple[str, str | None]:
        metadata = {"checkout_id": request.checkout_id, "user_id": str(request.user_id), "purpose": request.purpose, "plan": request.plan or ""}
        price_data: SessionCreateParamsLineItemPriceData = {"currency": request.currency.lower(), "unit_amount": request.amount}
        params: SessionCreateParams = {
            "client_reference_id": str(request.user_id),
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "metadata": metadata,
        }
        if request.customer_id:
            params["customer"] = request.customer_id
        if request.purpose == TOPUP:
            price_data["product_data"] = {"name": "Wallet top-up"}
            params |= {"mode": "payment", "payment_intent_data": {"metadata": metadata}, "line_items": [{"price_data": price_data, "quantity": 1}]}
        else:
            price = self.price_of_plan.get(request.plan or "")
            if price is None:
                price_data |= {"recurring": {"interval": request.interval or "month"}, "product_data": {"name": request.plan_title}}
            line: SessionCreateParamsLineItem = {"price": price} if price else {"price_data": price_data}
            params |= {"mode": "subscription", "subscription_data": {"metadata": metadata}, "line_items": [line | {"quantity": 1}]}
        try:
            session = self.client.v1.checkout.sessions.create(params=params)
        except stripe.StripeError as error:
            raise _provider_error(error) from error
        return session.url or "", session.id

    def close_checkout(self, provider_ref: str) -> None:
        try:
            self.client.v1.checkout.sessions.expire(provider_ref)
        except stripe.StripeError as error:  # paid or expired meanwhile: its event will say which
            logger.info("stripe: could not expire checkout session %s: %s", provider_ref, error)

    def portal_url(self, customer_id: str | None, return_url: str) -> str:
        if customer_id is None:
            raise ApiError(409, "no_subscription", "You have no subscription to manage.")
        try:
            return self.client.v1.billing_portal.sessions.create(params={"customer": customer_id, "return_url": return_url}).url
        except stripe.StripeError as error:
            raise _provider_error(error) from error

    def set_cancel_at_period_end(self, subscription_id: str, cancel: bool) -> SubscriptionState | None:
        try:
            found = self.client.v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": cancel})
        except stripe.StripeError as error:
            raise _provider_error(error) from error
        return self.state_of(found.to_dict())

    # Reading Stripe ----------------------------------------------------------------------------

    def refresh(self, subscription_id: str) -> SubscriptionState | None:
        """Stripe's current state of the subscription; None when Stripe has no such subscription.

        A network failure is 503 ``provider_unavailable``: a webhook answered
        so is delivered again by Stripe later.
        """
        try:
            found = self.client.v1.subscriptions.retrieve(subscription_id)
        except stripe.InvalidRequestError as error:
            if error.http_status == 404:
                return None
            raise _provider_error(error) from error
        except stripe.StripeError as error:
            logger.warning("stripe: %s", error)
            raise ApiError(503, "provider_unavailable", "The payment provider cannot be reached; try again later.") from error
        return self.state_of(found.to_dict())

    def state_of(self, subscription: dict[str, Any]) -> SubscriptionState:
        """A Stripe subscription object as a :class:`SubscriptionState` (older and newer API shapes alike)."""
        items = (subscription.get("items") or {}).get("data") or [{}]
        item = items[0]
        price = item.get("price") or item.get("plan") or {}
        metadata = subscription.get("metadata") or {}
        plans = self.kernel.entitlements.catalog.plans
        plan = self.plan_of_price.get(price.get("id", ""))
        if plan is None and price.get("lookup_key") in plans:
            plan = price["lookup_key"]
        named = plans.get(metadata.get("plan") or "")
        if plan is None and named is not None and _is_price_of(price, named):
            # The inline price our Checkout made from the plan's settings; a price switched to
            # later (in the portal) that is not the plan's is not taken for it.
            plan = named.name
        # Since API version 2025-03-31 the period lives on the item.
        period_end = _moment(subscription.get("current_period_end") or item.get("current_period_end"))
        cancel_at = _moment(subscription.get("cancel_at"))
        if cancel_at is not None and (period_end is None or cancel_at < period_end):
            period_end = cancel_at
        return SubscriptionState(
            provider=NAME,
            subscription_id=subscription["id"],
            customer_id=_id(subscription.get("customer")),
            checkout_id=metadata.get("checkout_id") or None,
            plan=plan,
            status=subscription.get("status") or "incomplete",
            current_period_end=period_end,
            cancel_at_period_end=bool(subscription.get("cancel_at_period_end")) or cancel_at is not None,
            observed_at=utcnow(),
        )

    # Webhooks ------------------------------------------------------------------------------------

    def verify(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event in a webhook request, after checking its signature; 400 ``invalid_signature`` otherwise."""
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature, self.settings.webhook_secret.get_secret_value(), tolerance=self.settings.tolerance_seconds
            )
            event = json.loads(payload)
        except (stripe.SignatureVerificationError, ValueError) as error:
            raise ApiError(400, "invalid_signature", f"Stripe-Signature: {error}") from error
        if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
            raise ApiError(400, "invalid_event", "The body is not a Stripe event.")
        return event

    def interpret(self, event: dict[str, Any]) -> BillingEvent:
        """What a verified event means here, reading the subscription again from Stripe when it names one."""
        kind = event["type"]
        found: dict[str, Any] = (event.get("data") or {}).get("object") or {}
        metadata = found.get("metadata") or {}
        base = BillingEvent(NAME, event["id"], kind)
        if kind in CHECKOUT_EVENTS:
            checkout_id = metadata.get("checkout_id")
            if found.get("mode") == "subscription" and found.get("subscription"):
                state = self.refresh(_id(found["subscription"]) or "")
                if state is not None and state.checkout_id is None:
                    state = replace(state, checkout_id=checkout_id)
                return replace(base, subscription=state, checkout_id=checkout_id)
            if found.get("mode") == "payment" and found.get("payment_status") == "paid":
                return replace(base, checkout_id=checkout_id, paid_amount=found.get("amount_total"))
            return base
        if kind == "payment_intent.succeeded" and metadata.get("purpose") == TOPUP:
            return replace(base, checkout_id=metadata.get("checkout_id"), paid_amount=found.get("amount_received") or found.get("amount"))
        subscription_id = None
        if kind in SUBSCRIPTION_EVENTS:
            subscription_id = found.get("id")
        elif kind in INVOICE_EVENTS:
            details = ((found.get("parent") or {}).get("subscription_details") or {}).get("subscription")
            subscription_id = _id(found.get("subscription")) or _id(details)
        if subscription_id:
            return replace(base, subscription=self.refresh(subscription_id))
        return base
