"""Forms and where they lead: the CSRF-checked form body, redirects after a post, log-in redirects, safe ``next`` paths."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse

from kernel.web import csrf
from kernel.web.requests import current_user, get_kernel


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
