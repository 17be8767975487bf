"""Guards of route endpoints: the entitlement check, and operators only."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from kernel.errors import ApiError
from kernel.identity import User
from kernel.web.requests import get_kernel, require_user

Endpoint = Callable[[Request], Awaitable[Response]]


def feature_required(feature: str) -> Callable[[Endpoint], Endpoint]:
    """Decorate a route endpoint: the caller must be signed in (401) and hold ``feature``.

    Refused over the API with 402 ``premium_required`` naming the feature, the
    plan that unlocks it and the upgrade URL; in the browser with the upsell
    page.
    """

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            get_kernel(request).entitlements.require(require_user(request), feature)
            return await endpoint(request)

        return guarded

    return decorate


def require_admin(connection: HTTPConnection) -> User:
    """The signed-in operator; 401 when signed out, 403 ``admin_required`` for everyone else."""
    user = require_user(connection)
    if not user.is_admin:
        raise ApiError(403, "admin_required", "Only operators may do this.")
    return user
