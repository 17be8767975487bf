"""The Spaces pages under ``/spaces``.

- ``/spaces`` lists the live Spaces (hosts the viewer follows first, as
  ``GET /api/spaces`` does), with a "Start a Space" form that posts back to
  ``/spaces`` and, once the Space exists, goes to its page.
- ``/spaces/{id}`` is a Space: its title, host, status, the stage, the
  listeners and the raised hands, drawn here so that the page reads without
  JavaScript; ``static/spaces.js`` joins it (WebRTC over the kernel's
  realtime socket, docs/spaces-protocol.md) and keeps it up to date.
- ``POST /spaces/{id}/start`` and ``/spaces/{id}/end`` are the host's Start
  and End buttons, as forms: they work without JavaScript too.

Every rule is the service's (:mod:`plugins.spaces.stage`); a refusal is shown
with the service's own message.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import ApiError, NavItem, User, current_user, login_redirect, read_form, redirect, render
from plugins.spaces.api import space_id as space_id_of
from plugins.spaces.api import spaces_of
from plugins.spaces.stage import REACTIONS

PAGE_SIZE = 20
TITLE_MAX = 100
STATIC = "/static/plugins/spaces"
ROLE_LABELS = {"host": "Host", "cohost": "Co-host", "speaker": "Speaker", "listener": "Listener"}
STATUS_LABELS = {"scheduled": "Scheduled", "live": "Live", "ended": "Ended"}
# A time zone offset from the browser beyond this is not a real one.
MAX_OFFSET_MINUTES = 16 * 60


# Hooks' helpers -----------------------------------------------------------------------------


def nav_items(user: User | None) -> list[NavItem]:
    """The navigation's "Spaces" item, for signed-in users."""
    if user is None:
        return []
    return [NavItem("Spaces", "/spaces", order=45, requires_login=True)]


def page_assets(request: Request, user: User | None) -> list[str]:
    """The Spaces stylesheet and script, on the Spaces pages only (nothing of Spaces runs elsewhere)."""
    path = request.url.path
    if user is None or not (path == "/spaces" or path.startswith("/spaces/")):
        return []
    return [f"{STATIC}/spaces.css", f"{STATIC}/spaces.js"]


# The list and the start form ------------------------------------------------------------------


def _form(values: dict[str, str] | None = None, errors: dict[str, str] | None = None) -> dict[str, Any]:
    return {"fields": values or {}, "errors": errors or {}}


async def _list_page(request: Request, viewer: User, form: dict[str, Any], status_code: int = 200) -> Response:
    cursor = request.query_params.get("cursor") or None
    page = await spaces_of(request).list_live(viewer, cursor, PAGE_SIZE)
    settings = spaces_of(request).settings
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    context = {
        "spaces": page.results,
        "upcoming": [] if cursor else await spaces_of(request).upcoming(viewer, PAGE_SIZE),
        "next_url": f"/spaces?{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else None,
        "paged": cursor is not None,
        "form": form,
        "max_days": settings.max_schedule_days,
        # The datetime-local picker's bounds, in UTC; spaces.js moves them to the reader's own zone.
        "min_start": now.strftime("%Y-%m-%dT%H:%M"),
        "max_start": (now + timedelta(days=settings.max_schedule_days)).strftime("%Y-%m-%dT%H:%M"),
    }
    return render(request, "spaces/list.html", context, status_code=status_code)


async def list_page(request: Request) -> Response:
    """``GET /spaces``: the live Spaces, hosts one follows first; ``?cursor=`` pages on."""
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request, "/spaces")
    return await _list_page(request, viewer, _form())


def parse_start(typed: str, offset: str | None) -> datetime | None:
    """The start time typed in the form (``2026-11-22T18:30``), in UTC; None when left empty.

    ``offset`` is the browser's ``Date.getTimezoneOffset()`` (minutes to add
    to local time to reach UTC), which spaces.js puts in the form; without it
    the time is taken as UTC, as the form then says.
    """
    typed = typed.strip()
    if not typed:
        return None
    try:
        moment = datetime.fromisoformat(typed)
    except ValueError:
        raise ApiError(422, "validation_error", "starts_at: enter a date and a time.", field="starts_at") from None
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    minutes = 0
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if offset and re.fullmatch(r"-?[0-9]{1,4}", offset.strip()) and abs(int(offset)) <= MAX_OFFSET_MINUTES:
        minutes = int(offset)
    return (moment + timedelta(minutes=minutes)).replace(tzinfo=UTC)


def _message(error: ApiError) -> str:
    """The service's message without the field's name in front ("starts_at: must be ..." → "Must be ...")."""
    field = str(error.extra.get("field") or "")
    text = error.message
    if field and text.startswith(f"{field}: "):
        text = text[len(field) + 2 :]
    return text[:1].upper() + text[1:]


async def create(request: Request) -> Response:
    """``POST /spaces`` (title, starts_at, tz_offset): start or schedule a Space and go to its page.

    A refusal shows the list again with the form filled in and the error by its field.
    """
    form = await read_form(request)
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request, "/spaces")
    values = {"title": " ".join((form.get("title") or "").split())[: TITLE_MAX + 1], "starts_at": (form.get("starts_at") or "")[:40]}
    try:
        if not values["title"]:
            raise ApiError(422, "validation_error", "title: give your Space a title.", field="title")
        if len(values["title"]) > TITLE_MAX:
            raise ApiError(422, "validation_error", f"title: at most {TITLE_MAX} characters.", field="title")
        starts_at = parse_start(values["starts_at"], form.get("tz_offset"))
        space = await spaces_of(request).create(viewer, values["title"], starts_at)
    except ApiError as error:
        field = str(error.extra.get("field") or "")
        errors = {field if field in ("title", "starts_at") else "": _message(error)}
        return await _list_page(request, viewer, _form(values, errors), status_code=error.status)
    return redirect(f"/spaces/{space['id']}")


# One Space ---------------------------------------------------------------------------------------


async def _space_page(request: Request, viewer: User, space_id: int, page_error: str | None = None, status_code: int = 200) -> Response:
    space = await spaces_of(request).get(viewer, space_id)
    host = space.get("host") or {}
    is_host = host.get("username", "").lower() == viewer.username.lower()
    context = {
        "space": space,
        "viewer": viewer,
        "is_host": is_host,
        "roles": ROLE_LABELS,
        "status_label": STATUS_LABELS.get(space["status"], space["status"]),
        "reactions": REACTIONS,
        "recordings": list(space.get("recordings") or []),
        "page_error": page_error,
        # The page's script starts from what was drawn here.
        "page_data": {
            "space": space,
            "me": viewer.username,
            "roles": ROLE_LABELS,
            "reactions": list(REACTIONS),
        },
    }
    return render(request, "spaces/space.html", context, status_code=status_code)


async def space_page(request: Request) -> Response:
    """``GET /spaces/{id}``: the Space; 404 for an unknown one (or one whose host blocked the viewer)."""
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request)
    return await _space_page(request, viewer, space_id_of(request))


async def _host_action(request: Request, action: str) -> Response:
    await read_form(request)
    viewer = current_user(request)
    space_id = space_id_of(request)
    if viewer is None:
        return login_redirect(request, f"/spaces/{space_id}")
    try:
        await getattr(spaces_of(request), action)(viewer, space_id)
    except ApiError as error:
        if error.code == "unknown_space":
            raise
        return await _space_page(request, viewer, space_id, page_error=error.message, status_code=error.status)
    return redirect(f"/spaces/{space_id}")


async def start(request: Request) -> Response:
    """``POST /spaces/{id}/start``: the host starts a scheduled Space."""
    return await _host_action(request, "start")


async def end(request: Request) -> Response:
    """``POST /spaces/{id}/end``: the host ends the Space for everyone."""
    return await _host_action(request, "end")


routes = [
    Route("/spaces", list_page, methods=["GET"]),
    Route("/spaces/", list_page, methods=["GET"]),
    Route("/spaces", create, methods=["POST"]),
    Route("/spaces/{space_id}", space_page, methods=["GET"]),
    Route("/spaces/{space_id}/start", start, methods=["POST"]),
    Route("/spaces/{space_id}/end", end, methods=["POST"]),
]
