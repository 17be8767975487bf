"""The billing pages: subscribing to a plan, one's plan, adding money, and the sandbox's card page.

- ``/payments/subscribe/{plan}`` is where the upsell pages lead (the
  ``subscribe_url`` hook): the plan and its price, and a button that opens
  a checkout (a POST, so that no link can start one by itself).
- ``/payments/subscription`` shows the plan, its status, the renewal or end
  date and a grace period's warning, with Cancel / Resume (or, with Stripe,
  the Customer Portal through ``/payments/subscription/portal``).
- ``/payments/topup`` takes an amount and opens a top-up checkout.
- ``/payments/checkout/{id}`` is the sandbox provider's checkout page: it
  takes Stripe's test cards and nothing else, and says so.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import ApiError, current_user, get_kernel, login_redirect, read_form, redirect, render
from plugins.payments.billing_api import pay_with_card
from plugins.payments.billing_service import Billing
from plugins.payments.checkouts import TOPUP
from plugins.payments.money import money, parse_amount
from plugins.payments.service import PAYMENTS


def _billing(request: Request) -> Billing:
    return PAYMENTS.of(get_kernel(request)).billing


def _base(request: Request) -> str:
    return _billing(request).base_url(str(request.base_url))


def _plan_context(request: Request, plan_name: str) -> dict[str, Any] | None:
    plan = get_kernel(request).entitlements.catalog.plans.get(plan_name)
    if plan is None or plan.price <= 0:
        return None
    return {"name": plan.name, "title": plan.title, "description": plan.description, "price": money(plan.price, plan.currency), "interval": plan.interval}


async def subscribe_page(request: Request) -> Response:
    """``GET /payments/subscribe/{plan}``: what the plan costs, and the button that opens the checkout."""
    user = current_user(request)
    plan_name = request.path_params["plan"]
    if user is None:
        return login_redirect(request, f"/payments/subscribe/{plan_name}")
    plan = _plan_context(request, plan_name)
    if plan is None:
        raise ApiError(404, "not_found", "There is no such plan for sale.")
    current = await _billing(request).subscription(user)
    return render(request, "payments/subscribe.html", {"plan": plan, "current": current, "error": None})


async def subscribe(request: Request) -> Response:
    """``POST /payments/subscribe/{plan}``: open a checkout and go to it."""
    form = await read_form(request)
    user = current_user(request)
    plan_name = request.path_params["plan"]
    if user is None:
        return login_redirect(request, f"/payments/subscribe/{plan_name}")
    plan = _plan_context(request, plan_name)
    if plan is None:
        raise ApiError(404, "not_found", "There is no such plan for sale.")
    del form
    try:
        opened = await _billing(request).start_subscription(user, plan_name, _base(request))
    except ApiError as error:
        current = await _billing(request).subscription(user)
        return render(request, "payments/subscribe.html", {"plan": plan, "current": current, "error": error}, status_code=error.status)
    return redirect(opened["checkout_url"])


async def subscription_page(request: Request) -> Response:
    """``GET /payments/subscription``: one's plan, its renewal, and the ways to change it."""
    user = current_user(request)
    if user is None:
        return login_redirect(request, "/payments/subscription")
    billing = _billing(request)
    checkout = None
    if request.query_params.get("checkout"):
        try:
            checkout = await anyio.to_thread.run_sync(billing.checkouts.get, request.query_params["checkout"], user.id)
        except ApiError:
            checkout = None
    context = {
        "subscription": await billing.subscription(user),
        "checkout": checkout,
        "provider": billing.provider.name,
        "plans": get_kernel(request).entitlements.catalog.plans,
        "changed": request.query_params.get("changed"),
    }
    return render(request, "payments/subscription.html", context)


async def change_subscription(request: Request) -> Response:
    """``POST /payments/subscription`` (action=cancel|resume): cancel at the period's end, or take it back."""
    form = await read_form(request)
    user = current_user(request)
    if user is None:
        return login_redirect(request, "/payments/subscription")
    action = form.get("action")
    if action not in ("cancel", "resume"):
        raise ApiError(422, "validation_error", "action: cancel or resume.", field="action")
    await _billing(request).set_cancel(user, action == "cancel")
    return redirect(f"/payments/subscription?changed={action}")


async def portal(request: Request) -> Response:
    """``GET /payments/subscription/portal``: to the provider's page for managing the subscription."""
    user = current_user(request)
    if user is None:
        return login_redirect(request, "/payments/subscription")
    return redirect(await _billing(request).portal_url(user, f"{_base(request)}/payments/subscription"))


async def topup_page(request: Request) -> Response:
    """``GET /payments/topup``: how much to add to the wallet."""
    user = current_user(request)
    if user is None:
        return login_redirect(request, "/payments/topup")
    return render(request, "payments/topup.html", _topup_context(request, request.query_params.get("amount", ""), None))


async def topup(request: Request) -> Response:
    """``POST /payments/topup`` (amount): open a top-up checkout and go to it."""
    form = await read_form(request)
    user = current_user(request)
    if user is None:
        return login_redirect(request, "/payments/topup")
    try:
        opened = await _billing(request).start_topup(user, parse_amount(form.get("amount", "")), _base(request))
    except ApiError as error:
        return render(request, "payments/topup.html", _topup_context(request, form.get("amount", ""), error), status_code=error.status)
    return redirect(opened["checkout_url"])


def _topup_context(request: Request, amount: str, error: ApiError | None) -> dict[str, Any]:
    settings = _billing(request).settings
    return {
        "amount": amount,
        "error": error,
        "low": money(settings.min_topup, settings.currency),
        "high": money(settings.max_topup, settings.currency),
        "suggestions": [10_00, 25_00, 50_00, 100_00],
        "currency": settings.currency,
        "money": money,
    }


async def checkout_page(request: Request) -> Response:
    """``GET /payments/checkout/{id}``: the sandbox's card form for one's own open checkout."""
    user = current_user(request)
    checkout_id = request.path_params["checkout_id"]
    if user is None:
        return login_redirect(request, f"/payments/checkout/{checkout_id}")
    return await _render_checkout(request, user.id, checkout_id, {}, None)


async def pay_checkout(request: Request) -> Response:
    """``POST /payments/checkout/{id}`` (card_number, expiry, cvc): pay, then back to where the purchase began."""
    form = await read_form(request)
    user = current_user(request)
    checkout_id = request.path_params["checkout_id"]
    if user is None:
        return login_redirect(request, f"/payments/checkout/{checkout_id}")
    try:
        done = await pay_with_card(_billing(request), user.id, checkout_id, form.get("card_number", ""), form.get("expiry", ""), form.get("cvc", ""))
    except ApiError as error:
        if error.status == 404:
            raise
        # The number is never sent back into the page: a declined card is typed again.
        return await _render_checkout(request, user.id, checkout_id, {"expiry": form.get("expiry", "")}, error)
    return redirect(f"/payments/?topup={checkout_id}" if done["purpose"] == TOPUP else f"/payments/subscription?checkout={checkout_id}")


async def _render_checkout(request: Request, user_id: int, checkout_id: str, typed: dict[str, str], error: ApiError | None) -> Response:
    billing = _billing(request)
    if billing.provider.name != "sandbox":
        raise ApiError(404, "not_found", "There is no sandbox checkout on this deployment.")
    row = await anyio.to_thread.run_sync(billing.checkouts.get, checkout_id, user_id)
    plan = get_kernel(request).entitlements.catalog.plans.get(row.plan or "")
    context = {
        "checkout": row,
        "plan": plan,
        "amount": money(row.amount, row.currency),
        "typed": typed,
        "error": error,
    }
    return render(request, "payments/checkout.html", context, status_code=error.status if error else 200)


routes = [
    Route("/payments/subscribe/{plan}", subscribe_page, methods=["GET"]),
    Route("/payments/subscribe/{plan}", subscribe, methods=["POST"]),
    Route("/payments/subscription", subscription_page, methods=["GET"]),
    Route("/payments/subscription", change_subscription, methods=["POST"]),
    Route("/payments/subscription/portal", portal, methods=["GET"]),
    Route("/payments/topup", topup_page, methods=["GET"]),
    Route("/payments/topup", topup, methods=["POST"]),
    Route("/payments/checkout/{checkout_id}", checkout_page, methods=["GET"]),
    Route("/payments/checkout/{checkout_id}", pay_checkout, methods=["POST"]),
]
