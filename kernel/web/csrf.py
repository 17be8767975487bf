"""Cross-site request forgery protection for cookie-authenticated requests.

The token is an HMAC of the session secret (or, before sign-in, of a random
pre-session cookie) under the deployment's secret key, so nothing extra is
stored and every cookie stays HttpOnly. Forms carry it in ``csrf_token``;
scripts send it as ``X-CSRF-Token`` (pages expose it in a meta tag).
Requests authenticated by a bearer token need no token: a browser never
sends one by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import HTTPConnection

from kernel.errors import ApiError

PRE_SESSION_COOKIE = "everything_csrf"
FIELD = "csrf_token"


def _sign(secret_key: str, value: str) -> str:
    return hmac.new(secret_key.encode(), b"csrf:" + value.encode(), hashlib.sha256).hexdigest()


def token_for(connection: HTTPConnection, secret_key: str) -> str:
    """The token the pages of this request embed.

    Sets ``connection.state.new_pre_session`` when a pre-session cookie must
    be issued with the response.
    """
    basis = connection.scope.get("session_secret") if connection.scope.get("user") else None
    if basis is None:
        basis = connection.cookies.get(PRE_SESSION_COOKIE) or getattr(connection.state, "new_pre_session", None)
    if basis is None:
        basis = secrets.token_urlsafe(24)
        connection.state.new_pre_session = basis
    return _sign(secret_key, basis)


def token_for_session(session_secret: str, secret_key: str) -> str:
    """The token that belongs to a session just opened (returned by the log-in API)."""
    return _sign(secret_key, session_secret)


def matches(basis: str, secret_key: str, submitted: str | None) -> bool:
    """True when ``submitted`` is the token of ``basis`` (a session or pre-session secret)."""
    if not submitted:
        return False
    return hmac.compare_digest(_sign(secret_key, basis), submitted)


def check(connection: HTTPConnection, secret_key: str, submitted: str | None) -> None:
    """403 ``csrf_failed`` unless ``submitted`` matches this request's token."""
    if connection.scope.get("user"):
        basis = connection.scope.get("session_secret")
    else:
        basis = connection.cookies.get(PRE_SESSION_COOKIE)
    if basis is None or not matches(basis, secret_key, submitted):
        raise ApiError(403, "csrf_failed", "The form has expired or did not come from this site. Reload the page and try again.")
