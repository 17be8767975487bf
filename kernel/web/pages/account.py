"""A signed-in person's own pages: settings, contacts, plans and upsells, notifications.

Every form posts to a route here that calls the same kernel services as the
JSON API; a refused form is shown again with the message and the input kept.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.errors import ApiError, not_found, validate
from kernel.plugin.answers import collect_async
from kernel.plugin.contract import ProfileSection
from kernel.web.api.auth import ProfileIn, TokenIn
from kernel.web.forms import login_redirect, login_required, read_form, redirect, safe_next
from kernel.web.rendering import render
from kernel.web.requests import current_session_id, current_user, get_kernel, require_user
from kernel.web.upsell import upsell_page


async def settings_page(request: Request) -> Response:
    if (response := login_required(request)) is not None:
        return response
    return await _render_settings(request, {})


async def _render_settings(request: Request, extra: dict[str, Any], status_code: int = 200) -> Response:
    kernel = get_kernel(request)
    user = current_user(request)
    assert user is not None
    sessions = await anyio.to_thread.run_sync(kernel.identity.list_sessions, user.id, current_session_id(request))
    tokens = await anyio.to_thread.run_sync(kernel.identity.list_tokens, user.id)
    blocked = await anyio.to_thread.run_sync(kernel.address_book.list_blocks, user, None, 50)
    await kernel.prepare_users(blocked.results)
    sections = [
        section
        for section in await collect_async(kernel.plugins.hook.settings_sections(request=request, user=user))
        if isinstance(section, ProfileSection)
    ]
    sections.sort(key=lambda section: (section.order, section.title))
    context = {"sessions": sessions, "tokens": tokens, "blocked": blocked.results, "sections": sections, **extra}
    return render(request, "settings.html", context, status_code=status_code)


async def settings_action(request: Request) -> Response:
    if (response := login_required(request)) is not None:
        return response
    form = await read_form(request)
    kernel = get_kernel(request)
    user = current_user(request)
    assert user is not None
    action = request.path_params["action"]
    try:
        if action == "profile":
            body = validate(ProfileIn, {"display_name": form.get("display_name", ""), "bio": form.get("bio", "")})
            await kernel.accounts.update_profile(user, body.display_name, body.bio)
            return redirect("/settings?saved=profile")
        if action == "password":
            current, new = form.get("current_password", ""), form.get("new_password", "")
            await kernel.accounts.change_password(user, current, new, current_session_id(request))
            return redirect("/settings?saved=password")
        if action == "tokens":
            name = validate(TokenIn, {"name": form.get("name", "")}).name
            token = await anyio.to_thread.run_sync(kernel.identity.create_token, user.id, name)
            return await _render_settings(request, {"new_token": token})
    except ApiError as error:
        return await _render_settings(request, {"error": error, "error_form": action}, status_code=error.status)
    raise not_found()


async def revoke(request: Request) -> Response:
    if (response := login_required(request)) is not None:
        return response
    await read_form(request)
    kernel = get_kernel(request)
    user = current_user(request)
    assert user is not None
    kind, item = request.path_params["kind"], request.path_params["id"]
    if kind == "sessions":
        await anyio.to_thread.run_sync(kernel.identity.end_session, user.id, item)
    elif kind == "tokens":
        await anyio.to_thread.run_sync(kernel.identity.delete_token, user.id, item)
    else:
        raise not_found()
    return redirect("/settings")


async def contacts_page(request: Request) -> Response:
    if (response := login_required(request)) is not None:
        return response
    kernel = get_kernel(request)
    user = require_user(request)
    page = await anyio.to_thread.run_sync(kernel.address_book.list_contacts, user, request.query_params.get("cursor"), 50)
    await kernel.prepare_users([item["user"] for item in page.results])
    return render(request, "contacts.html", {"contacts": page.results, "next_cursor": page.next_cursor})


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
    Route("/settings", settings_page, methods=["GET"]),
    Route("/settings/{action}", settings_action, methods=["POST"]),
    Route("/settings/{kind}/{id:int}/revoke", revoke, methods=["POST"]),
    Route("/contacts", contacts_page, methods=["GET"]),
    Route("/premium", premium, methods=["GET"]),
    Route("/notifications", notifications_page, methods=["GET"]),
    Route("/notifications/read", mark_notifications_read, methods=["POST"]),
]
