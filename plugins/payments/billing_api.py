"""The billing JSON API under ``/api/payments/``: subscriptions, checkouts, top-ups, and Stripe's webhook."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import ApiError, JSONResponse, get_kernel, read_json, require_user
from plugins.payments.billing_service import Billing
from plugins.payments.checkouts import checkout_json
from plugins.payments.sandbox_billing import SandboxBilling
from plugins.payments.service import PAYMENTS
from plugins.payments.stripe_billing import StripeBilling

# Stripe's events are a few kilobytes; anything far larger is not one.
MAX_WEBHOOK_BYTES = 512 * 1024


class CheckoutBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    plan: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class TopupBody(BaseModel):
    # Strict: "500" is not 500, and 5.0 is not an amount.
    model_config = ConfigDict(extra="forbid", strict=True)

    amount: int


class CardBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    card_number: Annotated[str, StringConstraints(max_length=32)]
    expiry: Annotated[str, StringConstraints(max_length=8)]
    cvc: Annotated[str, StringConstraints(max_length=8)]


def billing_of(request: Request) -> Billing:
    return PAYMENTS.of(get_kernel(request)).billing


def _base(request: Request) -> str:
    return billing_of(request).base_url(str(request.base_url))


async def checkout(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, CheckoutBody)
    return JSONResponse(await billing_of(request).start_subscription(user, body.plan, _base(request)), status_code=201)


async def topup(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, TopupBody)
    return JSONResponse(await billing_of(request).start_topup(user, body.amount, _base(request)), status_code=201)


async def one_checkout(request: Request) -> Response:
    user = require_user(request)
    row = await anyio.to_thread.run_sync(billing_of(request).checkouts.get, request.path_params["checkout_id"], user.id)
    return JSONResponse(checkout_json(row))


async def pay_sandbox_checkout(request: Request) -> Response:
    """The sandbox's card form, as JSON: 200 with the completed checkout, or 402 ``card_declined`` / 422."""
    user = require_user(request)
    billing = billing_of(request)
    body = await read_json(request, CardBody)
    return JSONResponse(await pay_with_card(billing, user.id, request.path_params["checkout_id"], body.card_number, body.expiry, body.cvc))


async def pay_with_card(billing: Billing, user_id: int, checkout_id: str, number: str, expiry: str, cvc: str) -> dict[str, Any]:
    """Charge a test card for the user's own sandbox checkout; the completed checkout."""
    provider = billing.provider
    if not isinstance(provider, SandboxBilling):
        raise ApiError(404, "not_found", "There is no sandbox checkout on this deployment.")
    row = await anyio.to_thread.run_sync(billing.checkouts.get, checkout_id, user_id)
    if row.status != "open":
        raise ApiError(409, "checkout_closed", f"This checkout is {row.status}.")
    await billing.apply(provider.pay(row, number, expiry, cvc))
    return checkout_json(await anyio.to_thread.run_sync(billing.checkouts.get, checkout_id, user_id))


async def subscription(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await billing_of(request).subscription(user))


async def cancel(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await billing_of(request).set_cancel(user, True))


async def resume(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await billing_of(request).set_cancel(user, False))


async def portal(request: Request) -> Response:
    user = require_user(request)
    base = _base(request)
    return JSONResponse({"url": await billing_of(request).portal_url(user, f"{base}/payments/subscription")})


async def stripe_webhook(request: Request) -> Response:
    """Stripe's events: 400 and no change unless the signature over the raw body is good and fresh.

    200 once applied (or when it was a replay); 503 when Stripe could not be
    read back, so that Stripe delivers the event again later.
    """
    billing = billing_of(request)
    provider = billing.provider
    if not isinstance(provider, StripeBilling):
        raise ApiError(404, "not_found", "This deployment does not bill through Stripe.")
    payload = await request.body()
    if len(payload) > MAX_WEBHOOK_BYTES:
        raise ApiError(413, "too_large", "The body is too large for a Stripe event.")
    event = provider.verify(payload, request.headers.get("stripe-signature"))
    meaning = await anyio.to_thread.run_sync(provider.interpret, event)
    applied = await billing.apply(meaning)
    return JSONResponse({"received": True, "replayed": not applied})


routes = [
    Route("/api/payments/checkout", checkout, methods=["POST"]),
    Route("/api/payments/checkouts/{checkout_id}", one_checkout, methods=["GET"]),
    Route("/api/payments/sandbox/checkouts/{checkout_id}/pay", pay_sandbox_checkout, methods=["POST"]),
    Route("/api/payments/topups", topup, methods=["POST"]),
    Route("/api/payments/subscription", subscription, methods=["GET"]),
    Route("/api/payments/subscription/cancel", cancel, methods=["POST"]),
    Route("/api/payments/subscription/resume", resume, methods=["POST"]),
    Route("/api/payments/subscription/portal", portal, methods=["POST"]),
    Route("/api/payments/stripe/webhook", stripe_webhook, methods=["POST"]),
]
