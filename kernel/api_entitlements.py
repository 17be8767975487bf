"""JSON API for plans and entitlements: what the caller may use, and what each plan costs and unlocks."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.app import Kernel, get_kernel
from kernel.http import JSONResponse, current_user


def plans_json(kernel: Kernel) -> list[dict[str, Any]]:
    """Every plan with its price and the features it unlocks (its own and those of the plans it includes)."""
    features = kernel.entitlements.running_features()
    return [
        {**plan.as_json(), "features": [info.key for info in features if plan.name in info.unlocked_by or info.plan == "free"]}
        for plan in kernel.entitlements.catalog.plans.values()
    ]


async def entitlements(request: Request) -> Response:
    """``GET /api/entitlements``: every feature of the running plugins, whether the caller holds it, and if not, why."""
    kernel = get_kernel(request)
    user = current_user(request)  # whose plans the middleware has loaded
    results = []
    for info in kernel.entitlements.running_features():
        decision = kernel.entitlements.check(user, info.key)
        results.append(
            {
                "key": info.key,
                "title": info.feature.title,
                "description": info.feature.description,
                "plugin": info.plugin,
                "plan": info.plan,
                "granted": decision.allowed,
                "reason": decision.reason,
                "message": decision.message,
                "upgrade_url": decision.upgrade_url,
            }
        )
    plans = kernel.plans_of(user) if user is not None else []
    return JSONResponse({"plans": plans, "features": results, "upgrade_url": kernel.entitlements.upgrade_url()})


async def plans(request: Request) -> Response:
    """``GET /api/plans``: the deployment's plans, prices and features."""
    return JSONResponse({"results": plans_json(get_kernel(request))})


routes = [
    Route("/api/entitlements", entitlements, methods=["GET"]),
    Route("/api/plans", plans, methods=["GET"]),
]
