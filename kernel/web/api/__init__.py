"""The kernel's JSON API under ``/api/`` (and the operations endpoints): one module per area, routes in the order they are tried."""

from starlette.routing import BaseRoute

from kernel.web.api import admin, auth, directory, entitlements, notifications, operations

routes: list[BaseRoute] = [
    *operations.routes,
    *auth.routes,
    *directory.routes,
    *entitlements.routes,
    *notifications.routes,
    *admin.routes,
]
