"""JSON API for accounts: sign-up, log-in, log-out, sessions, tokens and the caller's own account (``kernel.accounts`` does the work)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.accounts import BIO_LENGTH, DISPLAY_NAME_LENGTH, PASSWORD_LENGTH
from kernel.errors import not_found
from kernel.identity import User, iso
from kernel.web.requests import client_ip, current_session_id, get_kernel, read_json, require_user
from kernel.web.responses import JSONResponse
from kernel.web.sessions import close_session, open_session

if TYPE_CHECKING:
    from kernel.app import Kernel

class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=PASSWORD_LENGTH)


class SignupIn(_Body):
    username: str
    password: str
    display_name: str | None = Field(default=None, max_length=DISPLAY_NAME_LENGTH)


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
    display_name: str | None = Field(default=None, max_length=DISPLAY_NAME_LENGTH)
    bio: str | None = Field(default=None, max_length=BIO_LENGTH)


class PasswordIn(_Body):
    current_password: str
    new_password: str


def me_json(kernel: Kernel, user: User) -> dict[str, Any]:
    """The caller's own account: the public user object, with plans, creation time and operator flag."""
    return {**kernel.user_json(user), "plans": kernel.plans_of(user), "created_at": iso(user.created_at), "is_admin": user.is_admin}


async def signup(request: Request) -> Response:
    body = await read_json(request, SignupIn)
    kernel = get_kernel(request)
    user = await kernel.accounts.sign_up(body.username, body.password, body.display_name, client=client_ip(request))
    session = await open_session(request, user)
    return session.set_cookie(JSONResponse(kernel.user_json(user), status_code=201, headers={"X-CSRF-Token": session.csrf_token}))


async def login(request: Request) -> Response:
    body = await read_json(request, LoginIn)
    user = await get_kernel(request).accounts.log_in(body.username, body.password, client_ip(request))
    session = await open_session(request, user)
    return session.set_cookie(JSONResponse({"user": me_json(get_kernel(request), user), "csrf_token": session.csrf_token}))


async def logout(request: Request) -> Response:
    response = Response(status_code=204)
    await close_session(request, response)
    return response


async def me(request: Request) -> Response:
    kernel = get_kernel(request)
    return JSONResponse(me_json(kernel, require_user(request)))


async def update_me(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, ProfileIn)
    kernel = get_kernel(request)
    return JSONResponse(me_json(kernel, await kernel.accounts.update_profile(user, body.display_name, body.bio)))


async def change_password(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, PasswordIn)
    await get_kernel(request).accounts.change_password(user, body.current_password, body.new_password, current_session_id(request))
    return Response(status_code=204)


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
