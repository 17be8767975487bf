"""JSON API for plans and entitlements: what the caller may use, and what each plan costs and unlocks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.web.requests import current_user, get_kernel
from kernel.web.responses import JSONResponse


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
    return JSONResponse({"results": get_kernel(request).entitlements.plans_json()})


routes = [
    Route("/api/entitlements", entitlements, methods=["GET"]),
    Route("/api/plans", plans, methods=["GET"]),
]
