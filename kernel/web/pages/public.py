"""The pages anyone may open: home, sign-up, log-in, the directory and profiles.

Every form posts to a page route that calls the same functions as the JSON
API; a refused form is shown again with the message and the input kept.
"""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.errors import ApiError, not_found
from kernel.plugin.answers import collect, collect_async
from kernel.plugin.contract import ProfileAction, ProfileSection
from kernel.web.forms import login_required, read_form, redirect, safe_next
from kernel.web.rendering import lock_if_needed, render
from kernel.web.requests import client_ip, current_user, get_kernel, require_user
from kernel.web.sessions import close_session, open_session


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
        user = await kernel.accounts.sign_up(form.get("username", ""), form.get("password", ""), form.get("display_name"), client=client_ip(request))
    except ApiError as error:
        form.pop("password", None)
        response = render(request, "signup.html", {"form": form, "error": error, "next": safe_next(form.get("next"), "")}, status_code=error.status)
        response.headers.update(error.headers)
        return response
    session = await open_session(request, user)
    return session.set_cookie(redirect(safe_next(form.get("next"), f"/@{user.username}")))


async def login_page(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "login.html", {"form": {}, "next": safe_next(request.query_params.get("next"), "")})
    form = await read_form(request)
    try:
        user = await get_kernel(request).accounts.log_in(form.get("username", ""), form.get("password", ""), client_ip(request))
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


async def directory_page(request: Request) -> Response:
    kernel = get_kernel(request)
    q = "".join(char for char in request.query_params.get("q", "")[:50] if char.isprintable())
    viewer = current_user(request)
    page = await anyio.to_thread.run_sync(kernel.address_book.search, q, 20, None, viewer.id if viewer else None)
    await kernel.prepare_users(page.results)
    return render(request, "directory.html", {"q": q, "results": page.results})


async def profile_page(request: Request) -> Response:
    kernel = get_kernel(request)
    profile = await kernel.directory.find(request.path_params["username"])
    viewer = current_user(request)
    actions: list[ProfileAction] = []
    if viewer is None or viewer.id != profile.id:
        if viewer is not None:
            request.state.relation = await anyio.to_thread.run_sync(kernel.address_book.relation, viewer.id, profile.id)
        actions = [
            lock_if_needed(kernel, viewer, action)
            for action in collect(kernel.plugins.hook.profile_actions(request=request, viewer=viewer, profile=profile))
            if isinstance(action, ProfileAction)
        ]
        actions.sort(key=lambda action: (action.order, action.label))
    sections = [
        section
        for section in await collect_async(kernel.plugins.hook.profile_sections(request=request, viewer=viewer, profile=profile))
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
    profile = await kernel.directory.find(request.path_params["username"])
    which = request.path_params["which"]
    if which not in ("followers", "following"):
        raise not_found()
    lister = kernel.address_book.followers if which == "followers" else kernel.address_book.following
    page = await anyio.to_thread.run_sync(lister, profile, request.query_params.get("cursor"), 50)
    await kernel.prepare_users(page.results)
    return render(request, "user_list.html", {"profile": profile, "which": which, "results": page.results, "next_cursor": page.next_cursor})


async def profile_action(request: Request) -> Response:
    """``POST /@{username}/{action}``: follow, unfollow, contact, uncontact, block or unblock, then back to the page."""
    form = await read_form(request)
    if (response := login_required(request)) is not None:
        return response
    kernel = get_kernel(request)
    viewer = require_user(request)
    profile = await kernel.directory.find(request.path_params["username"])
    directory = kernel.directory
    action = request.path_params["action"]
    if action == "follow":
        await directory.follow(viewer, profile)
    elif action == "unfollow":
        await directory.unfollow(viewer, profile)
    elif action == "contact":
        await directory.add_contact(viewer, profile, form.get("nickname", "").strip()[:50])
    elif action == "uncontact":
        await directory.remove_contact(viewer, profile)
    elif action == "block":
        await directory.block(viewer, profile)
    elif action == "unblock":
        await directory.unblock(viewer, profile)
    else:
        raise not_found()
    return redirect(safe_next(form.get("next"), f"/@{profile.username}"))


routes = [
    Route("/", home, methods=["GET"]),
    Route("/signup", signup_page, methods=["GET", "POST"]),
    Route("/login", login_page, methods=["GET", "POST"]),
    Route("/logout", logout_page, methods=["POST"]),
    Route("/directory", directory_page, methods=["GET"]),
    Route("/@{username}", profile_page, methods=["GET"]),
    Route("/@{username}/{which}", profile_list, methods=["GET"]),
    Route("/@{username}/{action}", profile_action, methods=["POST"]),
]
