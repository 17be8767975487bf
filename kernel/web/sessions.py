"""Browser sessions: starting one with its cookie and CSRF token, and ending one."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from kernel.identity import User
from kernel.web import csrf
from kernel.web.requests import client_ip, get_kernel
from kernel.web.responses import set_cookie

SESSION_COOKIE = "everything_session"


class OpenedSession:
    """A session just started: its cookie secret and the CSRF token that goes with it."""

    def __init__(self, request: Request, secret: str) -> None:
        self.request = request
        self.secret = secret
        self.csrf_token = csrf.token_for_session(secret, get_kernel(request).secret_key)

    def set_cookie(self, response: Response) -> Response:
        """Put the session's cookie on ``response``, for as long as ``auth.session_days``; returns ``response``."""
        max_age = get_kernel(self.request).settings.auth.session_days * 86400
        set_cookie(self.request, response, SESSION_COOKIE, self.secret, max_age=max_age)
        return response


async def open_session(request: Request, user: User) -> OpenedSession:
    """Start a browser session for ``user``, remembering the browser and the address it came from."""
    kernel = get_kernel(request)
    secret, _ = await anyio.to_thread.run_sync(
        kernel.identity.start_session, user.id, request.headers.get("user-agent", ""), client_ip(request)
    )
    return OpenedSession(request, secret)


async def close_session(request: Request, response: Response) -> None:
    """End the session this request came with, and delete its cookie on ``response``."""
    credential = request.scope.get("credential")
    if credential is not None and credential.kind == "session":
        await anyio.to_thread.run_sync(get_kernel(request).identity.end_session, credential.user_id, credential.id)
    response.delete_cookie(SESSION_COOKIE, path="/")
