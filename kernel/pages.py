"""The kernel's pages: home, sign-up, log-in, settings, directory, contacts and profiles.

Every form posts to a page route that calls the same functions as the JSON
API; a refused form is shown again with the message and the input kept.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.api_auth import ProfileIn, TokenIn, close_session, log_in, open_session, set_new_password, sign_up, update_profile
from kernel.api_directory import find_user, follow_user
from kernel.app import get_kernel
from kernel.contract import ProfileAction, ProfileSection
from kernel.errors import ApiError, not_found
from kernel.http import current_session_id, current_user, validate
from kernel.web import lock_if_needed, login_required, read_form, redirect, render, safe_next


async def home(request: Request) -> Response:
    kernel = get_kernel(request)
    users = await anyio.to_thread.run_sync(kernel.identity.count_users)
    return render(request, "home.html", {"user_count": users})


async def signup_page(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "signup.html", {"form": {}, "next": safe_next(request.query_params.get("next"), "")})
    form = await read_form(request)
    kernel = get_kernel(request)
    try:
        user = await sign_up(kernel, form.get("username", ""), form.get("password", ""), form.get("display_name"))
    except ApiError as error:
        form.pop("password", None)
        return render(request, "signup.html", {"form": form, "error": error, "next": safe_next(form.get("next"), "")}, status_code=error.status)
    session = await open_session(request, user)
    return session.set_cookie(redirect(safe_next(form.get("next"), f"/@{user.username}")))


async def login_page(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "login.html", {"form": {}, "next": safe_next(request.query_params.get("next"), "")})
    form = await read_form(request)
    try:
        user = await log_in(request, form.get("username", ""), form.get("password", ""))
    except ApiError as error:
        form.pop("password", None)
        response = render(request, "login.html", {"form": form, "error": error, "next": safe_next(form.get("next"), "")}, status_code=error.status)
        response.headers.update(error.headers)
        return response
    session = await open_session(request, user)
    return session.set_cookie(redirect(safe_next(form.get("next"))))


async def logout_page(request: Request) -> Response:
    await read_form(request)
    response = redirect("/")
    await close_session(request, response)
    return response


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
        for section in await kernel.plugins.collect_async("settings_sections", request=request, user=user)
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
            await update_profile(kernel, user, body)
            return redirect("/settings?saved=profile")
        if action == "password":
            await set_new_password(request, user, form.get("current_password", ""), form.get("new_password", ""))
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


async def directory_page(request: Request) -> Response:
    kernel = get_kernel(request)
    q = "".join(char for char in request.query_params.get("q", "")[:50] if char.isprintable())
    viewer = current_user(request)
    page = await anyio.to_thread.run_sync(kernel.address_book.search, q, 20, None, viewer.id if viewer else None)
    await kernel.prepare_users(page.results)
    return render(request, "directory.html", {"q": q, "results": page.results})


async def contacts_page(request: Request) -> Response:
    if (response := login_required(request)) is not None:
        return response
    kernel = get_kernel(request)
    user = current_user(request)
    page = await anyio.to_thread.run_sync(kernel.address_book.list_contacts, user, request.query_params.get("cursor"), 50)
    await kernel.prepare_users([item["user"] for item in page.results])
    return render(request, "contacts.html", {"contacts": page.results, "next_cursor": page.next_cursor})


async def profile_page(request: Request) -> Response:
    kernel = get_kernel(request)
    profile = await find_user(kernel, request.path_params["username"])
    viewer = current_user(request)
    actions: list[ProfileAction] = []
    if viewer is None or viewer.id != profile.id:
        if viewer is not None:
            request.state.relation = await anyio.to_thread.run_sync(kernel.address_book.relation, viewer.id, profile.id)
        actions = [
            lock_if_needed(kernel, viewer, action)
            for action in kernel.plugins.collect("profile_actions", request=request, viewer=viewer, profile=profile)
            if isinstance(action, ProfileAction)
        ]
        actions.sort(key=lambda action: (action.order, action.label))
    sections = [
        section
        for section in await kernel.plugins.collect_async("profile_sections", request=request, viewer=viewer, profile=profile)
        if isinstance(section, ProfileSection)
    ]
    sections.sort(key=lambda section: (section.order, section.title))
    await kernel.prepare_users([profile])
    context = {
        "profile": profile,
        "actions": actions,
        "sections": sections,
        "relation": getattr(request.state, "relation", {}),
        "verified": kernel.is_verified(profile),
    }
    return render(request, "profile.html", context)


async def profile_list(request: Request) -> Response:
    kernel = get_kernel(request)
    profile = await find_user(kernel, request.path_params["username"])
    which = request.path_params["which"]
    if which not in ("followers", "following"):
        raise not_found()
    lister = kernel.address_book.followers if which == "followers" else kernel.address_book.following
    page = await anyio.to_thread.run_sync(lister, profile, request.query_params.get("cursor"), 50)
    await kernel.prepare_users(page.results)
    return render(request, "user_list.html", {"profile": profile, "which": which, "results": page.results, "next_cursor": page.next_cursor})


# Profile form actions and the address book method each one calls.
PROFILE_ACTIONS = {
    "follow": "follow",
    "unfollow": "unfollow",
    "contact": "add_contact",
    "uncontact": "remove_contact",
    "block": "block",
    "unblock": "unblock",
}


async def profile_action(request: Request) -> Response:
    form = await read_form(request)
    if (response := login_required(request)) is not None:
        return response
    kernel = get_kernel(request)
    viewer = current_user(request)
    profile = await find_user(kernel, request.path_params["username"])
    action = request.path_params["action"]
    if action not in PROFILE_ACTIONS:
        raise not_found()
    method = getattr(kernel.address_book, PROFILE_ACTIONS[action])
    if action == "follow":
        await follow_user(kernel, viewer, profile)
    elif action == "contact":
        await anyio.to_thread.run_sync(method, viewer, profile, form.get("nickname", "").strip()[:50])
    else:
        await anyio.to_thread.run_sync(method, viewer, profile)
    return redirect(safe_next(form.get("next"), f"/@{profile.username}"))


routes = [
    Route("/", home, methods=["GET"]),
    Route("/signup", signup_page, methods=["GET", "POST"]),
    Route("/login", login_page, methods=["GET", "POST"]),
    Route("/logout", logout_page, methods=["POST"]),
    Route("/settings", settings_page, methods=["GET"]),
    Route("/settings/{action}", settings_action, methods=["POST"]),
    Route("/settings/{kind}/{id:int}/revoke", revoke, methods=["POST"]),
    Route("/directory", directory_page, methods=["GET"]),
    Route("/contacts", contacts_page, methods=["GET"]),
    Route("/@{username}", profile_page, methods=["GET"]),
    Route("/@{username}/{which}", profile_list, methods=["GET"]),
    Route("/@{username}/{action}", profile_action, methods=["POST"]),
]
