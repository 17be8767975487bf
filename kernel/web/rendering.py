"""Rendering pages inside the layout, with the navigation, the plugins' assets, the CSRF token and cookies."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from kernel.identity import User
from kernel.plugin.answers import collect
from kernel.plugin.contract import NavItem, ProfileAction
from kernel.web import csrf
from kernel.web.requests import current_user, get_kernel
from kernel.web.responses import set_cookie

if TYPE_CHECKING:
    from kernel.app import Kernel


def navigation(request: Request) -> list[NavItem]:
    """The navigation for this request, from the kernel and every running plugin; locked items lead to the upsell page."""
    user = current_user(request)
    kernel = get_kernel(request)
    items = collect(kernel.plugins.hook.nav_items(request=request, user=user))
    shown = (item for item in items if isinstance(item, NavItem) and (user is not None or not item.requires_login))
    return sorted((lock_if_needed(kernel, user, item) for item in shown), key=lambda item: (item.order, item.label))


def page_assets(request: Request) -> tuple[list[str], list[str]]:
    """The stylesheets and scripts that running plugins add to every page (local paths only)."""
    paths = [path for path in collect(get_kernel(request).plugins.hook.page_assets(request=request, user=current_user(request))) if _local(path)]
    return [path for path in paths if path.endswith(".css")], [path for path in paths if not path.endswith(".css")]


def _local(path: object) -> bool:
    return isinstance(path, str) and path.startswith("/") and not path.startswith("//")


T = TypeVar("T", NavItem, ProfileAction)


def lock_if_needed(kernel: Kernel, user: User | None, item: T) -> T:
    """The item as this viewer sees it: when it needs a feature they lack, locked and leading to the upsell page."""
    if item.feature is None:
        return item
    decision = kernel.entitlements.check(user, item.feature)
    if decision.allowed:
        return replace(item, locked=False)
    upsell = kernel.entitlements.upgrade_url(item.feature)
    if isinstance(item, NavItem):
        return replace(item, locked=True, href=upsell)
    # A locked action is a link to the upsell page, not a form posting to the action.
    return replace(item, locked=True, href=upsell, method="get")


def render(request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    """Render ``template`` in the layout; every page goes through here."""
    kernel = get_kernel(request)
    token = csrf.token_for(request, kernel.secret_key)
    user = current_user(request)
    stylesheets, scripts = page_assets(request)
    full = {
        "user": user,
        "unread": kernel.notifications.unread_count(user) if user is not None else 0,
        "nav": navigation(request),
        "page_stylesheets": stylesheets,
        "page_scripts": scripts,
        "csrf_token": token,
        "kernel": kernel,
        **(context or {}),
    }
    response = kernel.templates.TemplateResponse(request, template, full, status_code=status_code)
    new_basis = getattr(request.state, "new_pre_session", None)
    if new_basis:
        set_cookie(request, response, csrf.PRE_SESSION_COOKIE, new_basis, max_age=None)
    return response
