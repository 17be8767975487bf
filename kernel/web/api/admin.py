"""JSON API for operators: plugin switches, feature rollouts, users' plans and grants, the audit log.

Everything the admin pages do, for scripts and other front ends. Every
route answers 403 ``admin_required`` to anyone but an operator.
"""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import admin, audit
from kernel.errors import not_found
from kernel.web.guards import require_admin
from kernel.web.requests import get_kernel, query_limit, read_json
from kernel.web.responses import JSONResponse


async def list_plugins(request: Request) -> Response:
    require_admin(request)
    kernel = get_kernel(request)
    return JSONResponse({"results": [admin.plugin_json(kernel, name) for name in kernel.plugins.records]})


async def switch_plugin(request: Request) -> Response:
    actor = require_admin(request)
    kernel = get_kernel(request)
    action = request.path_params["action"]
    if action not in ("enable", "disable"):
        raise not_found()
    record = await kernel.switch_plugin(request.path_params["name"], action == "enable", actor)
    return JSONResponse(admin.plugin_json(kernel, record.name))


async def list_features(request: Request) -> Response:
    require_admin(request)
    kernel = get_kernel(request)
    return JSONResponse({"results": [admin.feature_json(kernel, key) for key in kernel.entitlements.catalog.features]})


async def set_rollout(request: Request) -> Response:
    actor = require_admin(request)
    kernel = get_kernel(request)
    body = await read_json(request, admin.RolloutIn)
    key = request.path_params["key"]
    await kernel.set_rollout(key, body.percent, actor)
    return JSONResponse(admin.feature_json(kernel, key))


async def list_users(request: Request) -> Response:
    """``GET /api/admin/users?q=``: the directory's search, or every account newest first without ``q``."""
    require_admin(request)
    kernel = get_kernel(request)
    q = request.query_params.get("q", "")[:50].strip()
    page = await anyio.to_thread.run_sync(admin.find_users, kernel, q, request.query_params.get("cursor"), query_limit(request))
    await kernel.prepare_users(page.results)
    return JSONResponse(page.as_json(lambda user: admin.user_admin_json(kernel, user)))


async def get_user(request: Request) -> Response:
    require_admin(request)
    kernel = get_kernel(request)
    user = await kernel.directory.find(request.path_params["username"])
    grants = await anyio.to_thread.run_sync(kernel.entitlements.grants_of, user.id)
    await kernel.prepare_users([user])
    return JSONResponse({**admin.user_admin_json(kernel, user), "grants": [grant.as_json() for grant in grants]})


async def create_grant(request: Request) -> Response:
    actor = require_admin(request)
    kernel = get_kernel(request)
    body = await read_json(request, admin.GrantIn)
    user = await kernel.directory.find(request.path_params["username"])
    grant = await kernel.grant(user, body.plan, source=body.source, days=body.days, reference=body.reference, actor=actor)
    return JSONResponse(grant.as_json(), status_code=201)


async def revoke_plan(request: Request) -> Response:
    actor = require_admin(request)
    kernel = get_kernel(request)
    user = await kernel.directory.find(request.path_params["username"])
    revoked = await kernel.revoke(user, request.path_params["plan"], actor=actor)
    return JSONResponse({"revoked": [grant.as_json() for grant in revoked], "plans": kernel.plans_of(user)})


async def set_admin(request: Request) -> Response:
    actor = require_admin(request)
    kernel = get_kernel(request)
    user = await kernel.directory.find(request.path_params["username"])
    await anyio.to_thread.run_sync(admin.set_admin, kernel, user, request.method == "PUT", actor)
    updated = await anyio.to_thread.run_sync(kernel.identity.user_by_id, user.id)
    assert updated is not None
    return JSONResponse(admin.user_admin_json(kernel, updated))


async def audit_log(request: Request) -> Response:
    require_admin(request)
    kernel = get_kernel(request)
    page = await anyio.to_thread.run_sync(audit.list_entries, kernel.db, request.query_params.get("cursor"), query_limit(request, 50, 200))
    return JSONResponse(page.as_json())


routes = [
    Route("/api/admin/plugins", list_plugins, methods=["GET"]),
    Route("/api/admin/plugins/{name}/{action}", switch_plugin, methods=["POST"]),
    Route("/api/admin/features", list_features, methods=["GET"]),
    Route("/api/admin/features/{key}/rollout", set_rollout, methods=["PUT"]),
    Route("/api/admin/users", list_users, methods=["GET"]),
    Route("/api/admin/users/{username}", get_user, methods=["GET"]),
    Route("/api/admin/users/{username}/grants", create_grant, methods=["POST"]),
    Route("/api/admin/users/{username}/plans/{plan}", revoke_plan, methods=["DELETE"]),
    Route("/api/admin/users/{username}/admin", set_admin, methods=["PUT", "DELETE"]),
    Route("/api/admin/audit", audit_log, methods=["GET"]),
]
