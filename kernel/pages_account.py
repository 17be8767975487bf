"""The pages every signed-in person has besides settings: plans and upsells, and notifications."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.api_entitlements import plans_json
from kernel.app import get_kernel
from kernel.entitlements import Decision
from kernel.errors import ApiError
from kernel.http import current_user
from kernel.web import login_redirect, read_form, redirect, render, safe_next


def upsell_page(request: Request, decision: Decision | None, status_code: int = 200) -> Response:
    """The plans with their prices; with ``decision``, headed by the sentence saying what is locked and why."""
    kernel = get_kernel(request)
    user = current_user(request)
    held = set(kernel.plans_of(user)) if user is not None else set()
    plans = []
    for plan in plans_json(kernel):
        if plan["name"] == "free":
            continue
        urls = kernel.plugins.collect("subscribe_url", request=request, user=user, plan=plan["name"])
        plans.append({**plan, "held": plan["name"] in held, "subscribe_url": next((url for url in urls if isinstance(url, str)), None)})
    running = kernel.entitlements.running_features()
    context = {
        "decision": decision,
        "plans": plans,
        "feature_titles": {info.key: info.feature.title for info in running},
        # What a plan adds to what every account has.
        "paid_features": {info.key for info in running if info.plan != "free"},
        "held": held,
    }
    return render(request, "premium.html", context, status_code=status_code)


async def premium(request: Request) -> Response:
    """``/premium?feature=calls.video``: what each plan unlocks; the feature's upsell when one is named."""
    kernel = get_kernel(request)
    user = current_user(request)
    key = request.query_params.get("feature")
    decision = None
    if key and key in kernel.entitlements.catalog.features:
        decision = kernel.entitlements.check(user, key)
    return upsell_page(request, decision)


async def notifications_page(request: Request) -> Response:
    user = current_user(request)
    if user is None:
        return login_redirect(request)
    kernel = get_kernel(request)
    page, unread = await anyio.to_thread.run_sync(kernel.notifications.list, user, request.query_params.get("cursor"), 30)
    return render(request, "notifications.html", {"notifications": page.results, "next_cursor": page.next_cursor, "unread": unread})


async def mark_notifications_read(request: Request) -> Response:
    form = await read_form(request)
    user = current_user(request)
    if user is None:
        return login_redirect(request, "/notifications")
    ids = None
    if form.get("id"):
        try:
            ids = [int(form["id"])]
        except ValueError:
            raise ApiError(422, "validation_error", "id: a notification id", field="id") from None
    await get_kernel(request).notifications.mark_read(user, ids)
    return redirect(safe_next(form.get("next"), "/notifications"))


routes = [
    Route("/premium", premium, methods=["GET"]),
    Route("/notifications", notifications_page, methods=["GET"]),
    Route("/notifications/read", mark_notifications_read, methods=["POST"]),
]
