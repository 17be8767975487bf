"""The calls plugin's pages under ``/calls/``, and what it adds to other pages.

- ``/calls/`` lists one's calls, newest first, missed ones marked, paged by cursor.
- ``/calls/call?to=<username>&media=audio|video`` is the call page: it says
  at once when the call cannot be placed (no plan, screened out, blocked) and
  otherwise ``calls.js`` places the call there. A link that came from another
  site (``Sec-Fetch-Site`` other than ``same-origin`` or ``none``) waits for a
  click, so that no other site can make a visitor's camera ring someone.
- ``/calls/settings`` shows and saves one's call settings (the same form is a
  section of the kernel's ``/settings`` page).

The call itself — the incoming-call overlay, the in-call view, WebRTC — is
``static/calls.js``, which every page of a signed-in user loads (see
:func:`page_assets`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import (
    ApiError,
    NavItem,
    ProfileAction,
    ProfileSection,
    User,
    current_user,
    get_kernel,
    login_redirect,
    read_form,
    redirect,
    render,
    safe_next,
)
from plugins.calls.screening import ECHO, MEDIA
from plugins.calls.service import CALLS, Calls

PAGE_SIZE = 25
# Who may call, in the order the settings form offers them.
ALLOW_CHOICES = {
    "verified": "Verified accounts",
    "following": "People you follow",
    "contacts": "People in your address book",
}
EVERYONE = "everyone"
STATIC = "/static/plugins/calls"

# A refusal or an end of a call, in words; "{name}" is the other person. calls.js has the same table.
REASONS = {
    "premium_required": "Audio and video calls are a premium feature. Subscribe to gain access.",
    "not_allowed": "{name} only takes calls from certain people.",
    "calls_off": "{name} has turned calls off.",
    "blocked": "You can't call {name}.",
    "unknown_user": "There is no such user.",
    "self": "You can't call yourself.",
    "busy": "{name} is on another call.",
    "unavailable": "{name} isn't online right now. They'll see that you called.",
    "timeout": "No answer.",
    "rejected": "{name} declined the call.",
    "in_call": "You're already in a call.",
    "feature_unavailable": "Calls aren't open to your account yet.",
}


def _calls(request: Request) -> Calls:
    return CALLS.of(get_kernel(request))


def reason_text(reason: str | None, name: str) -> str:
    """A refusal code (``busy``, ``calls_off``…) as a sentence about ``name``."""
    return REASONS.get(reason or "", "The call can't be placed right now.").format(name=name)


def call_url(username: str, media: str) -> str:
    """The call page that calls ``username`` with ``media``."""
    return f"/calls/call?{urlencode({'to': username, 'media': media})}"


# Hooks' helpers -----------------------------------------------------------------------------


def profile_actions(request: Request, viewer: User | None, profile: User) -> list[ProfileAction]:
    """Audio call and Video call buttons on someone else's profile.

    Each names its feature, so the kernel shows a lock leading to the upsell
    when the viewer's plan lacks it; the echo test is free for everyone. A
    signed-out visitor gets one Call button that asks them to log in first.
    Nobody is offered a call across a block, either way.
    """
    if viewer is not None and viewer.id == profile.id:
        return []
    if viewer is None:
        return [ProfileAction("Call", "/login?next=" + quote(f"/@{profile.username}", safe="/@"), order=30)]
    relation = getattr(request.state, "relation", None) or {}
    if relation.get("blocking") or relation.get("blocked_by"):
        return []
    free = profile.username.lower() == ECHO
    return [
        ProfileAction(
            f"{media.capitalize()} call",
            call_url(profile.username, media),
            order=30 + index,
            feature=None if free else f"calls.{media}",
        )
        for index, media in enumerate(MEDIA)
    ]


def page_assets(request: Request, user: User | None) -> list[str]:
    """The incoming-call overlay and the in-call view, on every page of a signed-in user."""
    if user is None:
        return []
    return [f"{STATIC}/calls.css", f"{STATIC}/calls.js"]


def nav_items(user: User | None) -> list[NavItem]:
    """The navigation's "Calls" item, for signed-in users: their call history."""
    if user is None:
        return []
    return [NavItem("Calls", "/calls/", order=40, requires_login=True)]


async def settings_sections(request: Request, user: User | None) -> list[ProfileSection]:
    """The "Calls" section of the kernel's settings page: calls on or off, and who may call."""
    if user is None:
        return []
    settings = await _calls(request).get_settings(user)
    return [ProfileSection("Calls", "calls/settings_section.html", _settings_context(settings), order=20)]


def _settings_context(settings: dict[str, Any], error: ApiError | None = None) -> dict[str, Any]:
    allow = list(settings.get("allow") or [])
    return {
        "enabled": bool(settings.get("enabled")),
        "everyone": EVERYONE in allow,
        "allow": allow,
        "choices": ALLOW_CHOICES,
        "error": error,
    }


# History ----------------------------------------------------------------------------------


def _history_item(call: dict[str, Any]) -> dict[str, Any]:
    """A call as the history lists it: the other party, which way, and what became of it."""
    outgoing = call.get("direction") == "outgoing"
    other = call["callee"] if outgoing else call["caller"]
    reason = call.get("end_reason")
    if call.get("missed"):
        outcome = "Missed"
    elif call.get("state") == "ringing":
        outcome = "Ringing"
    elif call.get("state") == "answered":
        outcome = "In progress"
    elif call.get("answered_at"):
        outcome = _duration(call.get("duration_seconds"))
    elif outgoing:
        outcome = {
            "rejected": "Declined",
            "busy": "Busy",
            "unavailable": "Not answered",
            "timeout": "Not answered",
            "cancelled": "Cancelled",
        }.get(reason or "", "Not connected")
    else:
        outcome = "Declined" if reason == "rejected" else "Not answered"
    return {**call, "other": other, "outgoing": outgoing, "outcome": outcome}


def _duration(seconds: float | None) -> str:
    total = int(seconds or 0)
    hours, rest = divmod(total, 3600)
    minutes, seconds_left = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds_left:02}" if hours else f"{minutes}:{seconds_left:02}"


async def history(request: Request) -> Response:
    """``GET /calls/``: one's calls, newest first, missed ones marked; ``?cursor=`` pages on."""
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request, "/calls/")
    cursor = request.query_params.get("cursor") or None
    page = await _calls(request).history(viewer, cursor, PAGE_SIZE)
    next_url = f"/calls/?{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else None
    context = {"calls": [_history_item(call) for call in page.results], "next_url": next_url, "paged": cursor is not None}
    return render(request, "calls/history.html", context)


# The call page ----------------------------------------------------------------------------


def _media(request: Request) -> str:
    media = request.query_params.get("media") or "audio"
    if media not in MEDIA:
        raise ApiError(422, "validation_error", "media: audio or video", field="media")
    return media


async def call_page(request: Request) -> Response:
    """``GET /calls/call?to=&media=``: place a call (calls.js does it), or say why it can't be placed.

    Without ``to`` it is a form that asks whom to call.
    """
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request)
    media = _media(request)
    to = (request.query_params.get("to") or "").strip().lstrip("@")[:64]
    if not to:
        return render(request, "calls/call.html", {"callee": None, "media": media, "to": ""})
    kernel = get_kernel(request)
    callee = await anyio.to_thread.run_sync(kernel.user, to)
    name = f"@{callee.username}" if callee is not None else f"@{to}"
    check = await _calls(request).can_call(viewer, callee.username if callee is not None else to, media=media)
    reason = None if check.get("allowed") else check.get("reason") or "not_allowed"
    refusal = None
    if reason is not None:
        refusal = {
            "code": reason,
            "text": reason_text(reason, name),
            "upgrade_url": kernel.entitlements.upgrade_url(f"calls.{media}") if reason == "premium_required" else None,
        }
    context = {
        "callee": kernel.user_json(callee) if callee is not None else None,
        "to": callee.username if callee is not None else to,
        "media": media,
        "refusal": refusal,
        # A link from another site must not start the camera and ring someone by itself; a browser
        # that does not say where the link came from gets the Start button too.
        "autostart": request.headers.get("sec-fetch-site") in ("same-origin", "none"),
        "other_media_url": call_url(callee.username, "audio" if media == "video" else "video") if callee is not None else None,
    }
    status = {None: 200, "premium_required": 402, "unknown_user": 404}.get(reason, 403)
    return render(request, "calls/call.html", context, status_code=status)


# Settings ---------------------------------------------------------------------------------


def allow_from_form(form: dict[str, str]) -> list[str]:
    """The ``allow`` list from the settings form: everyone, or the ticked kinds of people."""
    if form.get("who", EVERYONE) == EVERYONE:
        return [EVERYONE]
    return [choice for choice in ALLOW_CHOICES if form.get(f"allow_{choice}")]


async def settings_page(request: Request) -> Response:
    """``GET /calls/settings``: the call settings on a page of their own."""
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request, "/calls/settings")
    settings = await _calls(request).get_settings(viewer)
    return render(request, "calls/settings.html", {"section": _settings_context(settings), "saved": request.query_params.get("saved")})


async def save_settings(request: Request) -> Response:
    """``POST /calls/settings`` (enabled, who, allow_*, next): save, and go back; a refusal shows the form again."""
    form = await read_form(request)
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request, "/calls/settings")
    calls = _calls(request)
    enabled = form.get("enabled") in ("1", "on", "true")
    allow = allow_from_form(form)
    try:
        if not allow:
            raise ApiError(422, "validation_error", "allow: choose who may call you", field="allow")
        await calls.put_settings(viewer, enabled, allow)
    except ApiError as error:
        context = _settings_context({"enabled": enabled, "allow": allow}, error)
        return render(request, "calls/settings.html", {"section": context}, status_code=error.status)
    back = safe_next(form.get("next"), "/calls/settings")
    separator = "&" if "?" in back else "?"
    return redirect(f"{back}{separator}saved=calls#calls-settings")


routes = [
    Route("/calls/", history, methods=["GET"]),
    Route("/calls/call", call_page, methods=["GET"]),
    Route("/calls/settings", settings_page, methods=["GET"]),
    Route("/calls/settings", save_settings, methods=["POST"]),
]
