"""Rendering pages inside the layout, with navigation and the CSRF token."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kernel import csrf
from kernel.app import get_kernel
from kernel.contract import NavItem, ProfileAction
from kernel.http import current_user
from kernel.identity import User

if TYPE_CHECKING:
    from kernel.app import Kernel


def navigation(request: Request) -> list[NavItem]:
    """The navigation for this request, from the kernel and every running plugin; locked items lead to the upsell page."""
    user = current_user(request)
    kernel = get_kernel(request)
    items = kernel.plugins.collect("nav_items", request=request, user=user)
    shown = (item for item in items if isinstance(item, NavItem) and (user is not None or not item.requires_login))
    return sorted((lock_if_needed(kernel, user, item) for item in shown), key=lambda item: (item.order, item.label))


def page_assets(request: Request) -> tuple[list[str], list[str]]:
    """The stylesheets and scripts that running plugins add to every page (local paths only)."""
    paths = [path for path in get_kernel(request).plugins.collect("page_assets", request=request, user=current_user(request)) if _local(path)]
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
    as_link = {"method": "get"} if isinstance(item, ProfileAction) else {}
    return replace(item, locked=True, href=kernel.entitlements.upgrade_url(item.feature), **as_link)


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


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    """Set a cookie the kernel's way: HttpOnly, SameSite=Lax, Secure behind HTTPS."""
    secure = request.url.scheme == "https" or get_kernel(request).settings.server.https
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/")


def login_redirect(request: Request, back: str | None = None) -> RedirectResponse:
    """To the log-in page, coming back to ``back`` (this page, with its query, by default) afterwards."""
    if back is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect("/login?next=" + quote(back, safe="/"))


def login_required(request: Request, back: str | None = None) -> RedirectResponse | None:
    """None for a signed-in visitor; otherwise :func:`login_redirect`: pages call it first."""
    return None if current_user(request) is not None else login_redirect(request, back)


def redirect(url: str) -> RedirectResponse:
    """After a form post: see other."""
    return RedirectResponse(url, status_code=303)


def wants_html(request: Request) -> bool:
    """True for page requests: everything outside ``/api/`` whose client accepts HTML."""
    if request.url.path.startswith("/api/") or request.url.path in ("/healthz", "/readyz"):
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept or "*/*" in accept or not accept


async def read_form(request: Request) -> dict[str, str]:
    """The posted form's text fields, after checking its CSRF token (403 when it fails)."""
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    csrf.check(request, get_kernel(request).secret_key, fields.pop(csrf.FIELD, None))
    return fields


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go to after a form; never another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target and target.isprintable():
        return target
    return default
