"""The upsell page: every plan with its price and what it unlocks, headed by what is locked and why.

``/premium`` shows it, and so does every refusal of a page request for lack
of a feature (402): the browser's side of ``premium_required``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from kernel.entitlements import FREE, Decision
from kernel.web.rendering import render
from kernel.web.requests import current_user, get_kernel


def upsell_page(request: Request, decision: Decision | None, status_code: int = 200) -> Response:
    """The plans with their prices; with ``decision``, headed by the sentence saying what is locked and why."""
    kernel = get_kernel(request)
    user = current_user(request)
    held = set(kernel.plans_of(user)) if user is not None else set()
    plans = []
    for plan in kernel.entitlements.plans_json():
        if plan["name"] == FREE:
            continue
        url = kernel.plugins.hook.subscribe_url(request=request, user=user, plan=plan["name"])
        plans.append({**plan, "held": plan["name"] in held, "subscribe_url": url if isinstance(url, str) else None})
    running = kernel.entitlements.running_features()
    context = {
        "decision": decision,
        "plans": plans,
        "feature_titles": {info.key: info.feature.title for info in running},
        # What a plan adds to what every account has.
        "paid_features": {info.key for info in running if info.plan != FREE},
        "held": held,
    }
    return render(request, "premium.html", context, status_code=status_code)
