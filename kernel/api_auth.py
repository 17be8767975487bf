"""JSON API for accounts: sign-up, log-in, log-out, sessions, tokens and the caller's own account."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import csrf
from kernel.app import Kernel, get_kernel
from kernel.errors import ApiError, not_found
from kernel.http import JSONResponse, client_ip, current_session_id, read_json, require_user
from kernel.identity import User, check_text, check_username, clean_display_name, iso
from kernel.middleware import SESSION_COOKIE
from kernel.passwords import hash_password, verify_password
from kernel.web import set_cookie

MAX_PASSWORD = 1024


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=MAX_PASSWORD)


class SignupIn(_Body):
    username: str
    password: str
    display_name: str | None = Field(None, max_length=50)


class LoginIn(_Body):
    username: str
    password: str


class TokenIn(_Body):
    name: str = Field(min_length=1, max_length=60)

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class ProfileIn(_Body):
    display_name: str | None = Field(None, max_length=50)
    bio: str | None = Field(None, max_length=160)


class PasswordIn(_Body):
    current_password: str
    new_password: str


def check_password_rules(kernel: Kernel, password: str, field: str = "password") -> None:
    minimum = kernel.settings.auth.min_password_length
    if len(password) < minimum:
        raise ApiError(422, "validation_error", f"{field}: at least {minimum} characters", field=field)


async def sign_up(kernel: Kernel, username: str, password: str, display_name: str | None) -> User:
    """Create an account after checking every rule; shared by the API and the sign-up page."""
    check_username(username, kernel.identity.reserved)
    check_password_rules(kernel, password)
    display = clean_display_name(display_name, username)
    password_hash = await anyio.to_thread.run_sync(hash_password, password, limiter=kernel.password_limiter)
    user = await anyio.to_thread.run_sync(kernel.identity.create_user, username, password_hash, display)
    await kernel.plugins.notify("user_created", kernel=kernel, user=user)
    return user


async def log_in(request: Request, username: str, password: str) -> User:
    """Check a password under the rate limits; 429 with Retry-After, or 401.

    The attempt counts as a failure before the password is checked, and is
    forgiven only when it succeeds: a burst of guesses sent at once is
    limited like guesses sent one by one.
    """
    kernel = get_kernel(request)
    by_username, by_client = kernel.login_failures_by_username, kernel.login_failures_by_client
    key_user, key_client = username.lower(), client_ip(request)
    wait = max(by_username.retry_after(key_user), by_client.retry_after(key_client))
    if wait:
        raise ApiError(
            429, "rate_limited", f"Too many failed log-ins. Try again in {wait} seconds.", headers={"Retry-After": str(wait)}
        )
    by_username.fail(key_user)
    by_client.fail(key_client)
    found = await anyio.to_thread.run_sync(kernel.identity.password_hash_of, username)
    ok = await anyio.to_thread.run_sync(
        verify_password, found[1] if found else None, password, limiter=kernel.password_limiter
    )
    if not ok or found is None:
        raise ApiError(401, "invalid_credentials", "Wrong username or password.")
    by_username.reset(key_user)
    by_client.forgive(key_client)
    return kernel.identity.user_by_id(found[0])  # type: ignore[return-value]


class OpenedSession:
    """A session just started: its cookie secret and the CSRF token that goes with it."""

    def __init__(self, request: Request, secret: str) -> None:
        self.request = request
        self.secret = secret
        self.csrf_token = csrf.token_for_session(secret, get_kernel(request).secret_key)

    def set_cookie(self, response: Response) -> Response:
        max_age = get_kernel(self.request).settings.auth.session_days * 86400
        set_cookie(self.request, response, SESSION_COOKIE, self.secret, max_age=max_age)
        return response


async def open_session(request: Request, user: User) -> OpenedSession:
    """Start a browser session for ``user``."""
    kernel = get_kernel(request)
    secret, _ = await anyio.to_thread.run_sync(
        kernel.identity.start_session, user.id, request.headers.get("user-agent", ""), client_ip(request)
    )
    return OpenedSession(request, secret)


async def close_session(request: Request, response: Response) -> None:
    credential = request.scope.get("credential")
    if credential is not None and credential.kind == "session":
        await anyio.to_thread.run_sync(get_kernel(request).identity.end_session, credential.user_id, credential.id)
    response.delete_cookie(SESSION_COOKIE, path="/")


def me_json(kernel: Kernel, user: User) -> dict[str, Any]:
    return {**kernel.user_json(user), "plans": kernel.plans_of(user), "created_at": iso(user.created_at), "is_admin": user.is_admin}


async def signup(request: Request) -> Response:
    body = await read_json(request, SignupIn)
    kernel = get_kernel(request)
    user = await sign_up(kernel, body.username, body.password, body.display_name)
    session = await open_session(request, user)
    return session.set_cookie(JSONResponse(kernel.user_json(user), status_code=201, headers={"X-CSRF-Token": session.csrf_token}))


async def login(request: Request) -> Response:
    body = await read_json(request, LoginIn)
    user = await log_in(request, body.username, body.password)
    session = await open_session(request, user)
    return session.set_cookie(JSONResponse({"user": me_json(get_kernel(request), user), "csrf_token": session.csrf_token}))


async def logout(request: Request) -> Response:
    response = Response(status_code=204)
    await close_session(request, response)
    return response


async def me(request: Request) -> Response:
    kernel = get_kernel(request)
    return JSONResponse(me_json(kernel, require_user(request)))


async def update_profile(kernel: Kernel, user: User, body: ProfileIn) -> User:
    """Apply a profile edit after checking it; shared by the API and the settings page."""
    display = clean_display_name(body.display_name, user.username) if body.display_name is not None else None
    bio = check_text(body.bio, "bio", multiline=True).strip() if body.bio is not None else None
    return await anyio.to_thread.run_sync(kernel.identity.update_profile, user.id, display, bio)


async def update_me(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, ProfileIn)
    kernel = get_kernel(request)
    return JSONResponse(me_json(kernel, await update_profile(kernel, user, body)))


async def change_password(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, PasswordIn)
    await set_new_password(request, user, body.current_password, body.new_password)
    return Response(status_code=204)


async def set_new_password(request: Request, user: User, current: str, new: str) -> None:
    """Check the current password, then set the new one and end the user's other sessions."""
    kernel = get_kernel(request)
    stored = await anyio.to_thread.run_sync(kernel.identity.password_hash_by_id, user.id)
    if not await anyio.to_thread.run_sync(verify_password, stored, current, limiter=kernel.password_limiter):
        raise ApiError(403, "invalid_credentials", "current_password: wrong password", field="current_password")
    check_password_rules(kernel, new, "new_password")
    new_hash = await anyio.to_thread.run_sync(hash_password, new, limiter=kernel.password_limiter)
    await anyio.to_thread.run_sync(kernel.identity.set_password, user.id, new_hash, current_session_id(request))


async def create_token(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, TokenIn)
    token = await anyio.to_thread.run_sync(get_kernel(request).identity.create_token, user.id, body.name)
    return JSONResponse(token, status_code=201)


async def list_tokens(request: Request) -> Response:
    user = require_user(request)
    tokens = await anyio.to_thread.run_sync(get_kernel(request).identity.list_tokens, user.id)
    return JSONResponse({"results": tokens})


async def delete_token(request: Request) -> Response:
    user = require_user(request)
    deleted = await anyio.to_thread.run_sync(get_kernel(request).identity.delete_token, user.id, request.path_params["id"])
    if not deleted:
        raise not_found("No such token.")
    return Response(status_code=204)


async def list_sessions(request: Request) -> Response:
    user = require_user(request)
    sessions = await anyio.to_thread.run_sync(get_kernel(request).identity.list_sessions, user.id, current_session_id(request))
    return JSONResponse({"results": sessions})


async def delete_session(request: Request) -> Response:
    user = require_user(request)
    ended = await anyio.to_thread.run_sync(get_kernel(request).identity.end_session, user.id, request.path_params["id"])
    if not ended:
        raise not_found("No such session.")
    return Response(status_code=204)


routes = [
    Route("/api/auth/signup", signup, methods=["POST"]),
    Route("/api/auth/login", login, methods=["POST"]),
    Route("/api/auth/logout", logout, methods=["POST"]),
    Route("/api/auth/tokens", create_token, methods=["POST"]),
    Route("/api/auth/tokens", list_tokens, methods=["GET"]),
    Route("/api/auth/tokens/{id:int}", delete_token, methods=["DELETE"]),
    Route("/api/auth/sessions", list_sessions, methods=["GET"]),
    Route("/api/auth/sessions/{id:int}", delete_session, methods=["DELETE"]),
    Route("/api/me", me, methods=["GET"]),
    Route("/api/me", update_me, methods=["PATCH"]),
    Route("/api/me/password", change_password, methods=["PUT"]),
]
