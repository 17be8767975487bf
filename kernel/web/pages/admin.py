"""The operator's pages: plugins and feature rollouts, users' plans and operator rights, the audit log.

Every form posts to a route here that calls the same kernel methods as the
admin JSON API (``kernel/web/api/admin.py``). A change that succeeds redirects
back to its page with ``?saved=...``, shown as a notice; a refused one shows
the page again with the message, the error's status and the input kept.

Signed-out visitors are sent to the log-in page; signed-in users who are not
operators get the 403 page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import admin, audit
from kernel.entitlements import FREE, GRANT_SOURCES
from kernel.errors import ApiError, not_found, validate
from kernel.identity import User
from kernel.web.forms import login_required, read_form, redirect
from kernel.web.guards import require_admin
from kernel.web.rendering import render
from kernel.web.requests import current_user, get_kernel

if TYPE_CHECKING:
    from kernel.app import Kernel

USERS_PER_PAGE = 20
AUDIT_PER_PAGE = 50
RECENT_AUDIT = 10


# Access ---------------------------------------------------------------------------------


def _clean_query(raw: str) -> str:
    return "".join(char for char in raw[:50] if char.isprintable()).strip()


def _saved(request: Request, known: set[str]) -> tuple[str | None, str | None]:
    """The ``saved`` code of the redirect that led here and its subject, when the subject is one this page knows."""
    saved = request.query_params.get("saved")
    what = request.query_params.get("what")
    return saved, what if what in known else None


def _user_url(person: User, **query: str) -> str:
    return f"/admin/users/{quote(person.username)}" + (f"?{urlencode(query)}" if query else "")


# Overview: plugins, features, latest audit entries ------------------------------------------


PLUGIN_NOTICES = {"plugin-enabled": "switched on", "plugin-disabled": "switched off"}


def _overview_notice(kernel: Kernel, saved: str | None, what: str | None) -> tuple[str, bool] | None:
    """The notice after a change, and whether it is a warning (a plugin switched on that is not running)."""
    if saved is None:
        return None
    record = kernel.plugins.records.get(what or "")
    if saved in PLUGIN_NOTICES and record is not None:
        text = f"Plugin {what} {PLUGIN_NOTICES[saved]}."
        if saved == "plugin-enabled" and not record.running:
            return f"{text} It is {record.state}: {record.reason}", True
        return text, False
    if saved == "rollout" and what in kernel.entitlements.catalog.features:
        percent = kernel.entitlements.rollouts.get(what, 100)
        return f"Feature {what} now reaches {percent}% of the users its plans allow.", False
    return "Saved.", False


async def _render_overview(request: Request, extra: dict[str, Any], status_code: int = 200) -> Response:
    kernel = get_kernel(request)
    plugins = [admin.plugin_json(kernel, name) for name in kernel.plugins.records]
    features = [admin.feature_json(kernel, key) for key in kernel.entitlements.catalog.features]
    recent = await anyio.to_thread.run_sync(audit.list_entries, kernel.db, None, RECENT_AUDIT)
    saved, what = _saved(request, set(kernel.plugins.records) | set(kernel.entitlements.catalog.features))
    context = {
        "plugins": plugins,
        "features": features,
        "entries": recent.results,
        "more_entries": recent.next_cursor is not None,
        "notice": None if "error" in extra else _overview_notice(kernel, saved, what),
        "form": {},
        **extra,
    }
    return render(request, "admin/overview.html", context, status_code=status_code)


async def overview_page(request: Request) -> Response:
    if (response := login_required(request)) is not None:
        return response
    require_admin(request)
    return await _render_overview(request, {})


async def plugin_action(request: Request) -> Response:
    """``POST /admin/plugins/{name}/{action}``: switch a plugin on (``enable``) or off (``disable``)."""
    await read_form(request)
    if (response := login_required(request, "/admin")) is not None:
        return response
    actor = require_admin(request)
    kernel = get_kernel(request)
    name, action = request.path_params["name"], request.path_params["action"]
    if action not in ("enable", "disable"):
        raise not_found()
    try:
        record = await kernel.switch_plugin(name, action == "enable", actor)
    except ApiError as error:
        return await _render_overview(request, {"error": error, "error_form": f"plugin:{name}"}, error.status)
    return redirect(f"/admin?{urlencode({'saved': f'plugin-{action}d', 'what': record.name})}")


async def rollout_action(request: Request) -> Response:
    """``POST /admin/features/{key}/rollout``: the percent of users (0 to 100) a feature reaches."""
    form = await read_form(request)
    if (response := login_required(request, "/admin")) is not None:
        return response
    actor = require_admin(request)
    kernel = get_kernel(request)
    key = request.path_params["key"]
    try:
        body = validate(admin.RolloutIn, {"percent": form.get("percent", "").strip()})
        await kernel.set_rollout(key, body.percent, actor)
    except ApiError as error:
        return await _render_overview(request, {"error": error, "error_form": f"rollout:{key}", "form": form}, error.status)
    return redirect(f"/admin?{urlencode({'saved': 'rollout', 'what': key})}")


# Users ----------------------------------------------------------------------------------------


async def users_page(request: Request) -> Response:
    """``GET /admin/users?q=&cursor=``: the directory's search (every account, newest first, without q), with plans and rights."""
    if (response := login_required(request)) is not None:
        return response
    require_admin(request)
    kernel = get_kernel(request)
    q = _clean_query(request.query_params.get("q", ""))
    cursor = request.query_params.get("cursor") or None
    page = await anyio.to_thread.run_sync(admin.find_users, kernel, q, cursor, USERS_PER_PAGE)
    await kernel.prepare_users(page.results)
    rows = [
        {"person": person, "plans": kernel.plans_of(person), "verified": kernel.is_verified(person)} for person in page.results
    ]
    return render(
        request, "admin/users.html", {"q": q, "rows": rows, "next_cursor": page.next_cursor, "paged": cursor is not None}
    )


USER_NOTICES = {
    "granted": "Plan {what} granted.",
    "revoked": "Plan {what} revoked.",
    "not-held": "There was no current grant of {what} to revoke.",
}


def _user_notice(request: Request, kernel: Kernel, person: User) -> tuple[str, bool] | None:
    """The notice after a change to this user (never a warning)."""
    saved, what = _saved(request, set(kernel.entitlements.catalog.plans))
    if saved is None:
        return None
    if saved == "operator-on":
        return f"@{person.username} is now an operator.", False
    if saved == "operator-off":
        return f"@{person.username} is no longer an operator.", False
    if saved in USER_NOTICES and what is not None:
        return USER_NOTICES[saved].format(what=what), False
    return "Saved.", False


async def _render_user(request: Request, person: User, extra: dict[str, Any], status_code: int = 200) -> Response:
    kernel = get_kernel(request)
    fresh = await anyio.to_thread.run_sync(kernel.identity.user_by_id, person.id)
    person = fresh or person
    grants = await anyio.to_thread.run_sync(kernel.entitlements.grants_of, person.id)
    await kernel.prepare_users([person])
    catalog = kernel.entitlements.catalog.plans
    plans = kernel.plans_of(person)
    operator = current_user(request)
    context = {
        "person": person,
        "plans": plans,
        "catalog": catalog,
        "revocable": [name for name in plans if name != FREE],
        "grants": [grant.as_json() for grant in grants],
        "grantable": [plan for name, plan in catalog.items() if name != FREE],
        "sources": GRANT_SOURCES,
        "verified": kernel.is_verified(person),
        "is_self": operator is not None and operator.id == person.id,
        "notice": None if "error" in extra else _user_notice(request, kernel, person),
        "form": {},
        **extra,
    }
    return render(request, "admin/user.html", context, status_code=status_code)


async def user_page(request: Request) -> Response:
    if (response := login_required(request)) is not None:
        return response
    require_admin(request)
    person = await get_kernel(request).directory.find(request.path_params["username"])
    return await _render_user(request, person, {})


async def _user_form(request: Request) -> tuple[dict[str, str], User, User] | Response:
    """The checks every user form goes through: CSRF, signed in, operator, the user exists."""
    form = await read_form(request)
    username = request.path_params["username"]
    if (response := login_required(request, f"/admin/users/{username}")) is not None:
        return response
    actor = require_admin(request)
    person = await get_kernel(request).directory.find(username)
    return form, actor, person


async def grant_action(request: Request) -> Response:
    """``POST /admin/users/{username}/grant``: grant a plan, for some days or until revoked."""
    checked = await _user_form(request)
    if isinstance(checked, Response):
        return checked
    form, actor, person = checked
    kernel = get_kernel(request)
    try:
        body = validate(
            admin.GrantIn,
            {
                "plan": form.get("plan", "").strip(),
                "days": form.get("days", "").strip() or None,
                "source": form.get("source", "operator").strip(),
                "reference": form.get("reference", "").strip(),
            },
        )
        await kernel.grant(person, body.plan, source=body.source, days=body.days, reference=body.reference, actor=actor)
    except ApiError as error:
        return await _render_user(request, person, {"error": error, "error_form": "grant", "form": form}, error.status)
    return redirect(_user_url(person, saved="granted", what=body.plan))


async def revoke_action(request: Request) -> Response:
    """``POST /admin/users/{username}/revoke``: end every current or scheduled grant of a plan now."""
    checked = await _user_form(request)
    if isinstance(checked, Response):
        return checked
    form, actor, person = checked
    kernel = get_kernel(request)
    plan = form.get("plan", "").strip()
    try:
        if not plan:
            raise ApiError(422, "validation_error", "plan: This field is required", field="plan")
        revoked = await kernel.revoke(person, plan, actor=actor)
    except ApiError as error:
        return await _render_user(request, person, {"error": error, "error_form": "revoke"}, error.status)
    return redirect(_user_url(person, saved="revoked" if revoked else "not-held", what=plan))


async def operator_action(request: Request) -> Response:
    """``POST /admin/users/{username}/admin``: ``value=on`` makes the user an operator, ``off`` takes it back."""
    checked = await _user_form(request)
    if isinstance(checked, Response):
        return checked
    form, actor, person = checked
    kernel = get_kernel(request)
    value = form.get("value", "")
    try:
        if value not in ("on", "off"):
            raise ApiError(422, "validation_error", "value: must be on or off", field="value")
        await anyio.to_thread.run_sync(admin.set_admin, kernel, person, value == "on", actor)
    except ApiError as error:
        return await _render_user(request, person, {"error": error, "error_form": "operator"}, error.status)
    return redirect(_user_url(person, saved=f"operator-{value}"))


# Audit log ------------------------------------------------------------------------------------


async def audit_page(request: Request) -> Response:
    """``GET /admin/audit?cursor=``: every change operators, tools and plugins made, newest first."""
    if (response := login_required(request)) is not None:
        return response
    require_admin(request)
    kernel = get_kernel(request)
    cursor = request.query_params.get("cursor") or None
    page = await anyio.to_thread.run_sync(audit.list_entries, kernel.db, cursor, AUDIT_PER_PAGE)
    return render(
        request, "admin/audit.html", {"entries": page.results, "next_cursor": page.next_cursor, "paged": cursor is not None}
    )


routes = [
    Route("/admin", overview_page, methods=["GET"]),
    Route("/admin/plugins/{name}/{action}", plugin_action, methods=["POST"]),
    Route("/admin/features/{key}/rollout", rollout_action, methods=["POST"]),
    Route("/admin/users", users_page, methods=["GET"]),
    Route("/admin/users/{username}", user_page, methods=["GET"]),
    Route("/admin/users/{username}/grant", grant_action, methods=["POST"]),
    Route("/admin/users/{username}/revoke", revoke_action, methods=["POST"]),
    Route("/admin/users/{username}/admin", operator_action, methods=["POST"]),
    Route("/admin/audit", audit_page, methods=["GET"]),
]
