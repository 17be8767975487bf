"""Decorators that guard route endpoints with the entitlement check."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from kernel.app import get_kernel
from kernel.http import require_user

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
