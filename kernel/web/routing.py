"""Routing: the kernel's router (Starlette's, with a dictionary in front for paths without parameters),
and the gate in front of every plugin route."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable

from starlette.routing import BaseRoute, Host, Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from kernel.errors import not_found
from kernel.plugin.manager import PluginRecord

logger = logging.getLogger("everything.plugins")


class PluginGate:
    """Wraps a plugin route's app: 404 while the plugin is not running; errors logged with its name."""

    def __init__(self, app: ASGIApp, record: PluginRecord) -> None:
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.record.running:
            raise not_found()
        try:
            await self.app(scope, receive, send)
        except Exception:
            logger.exception("plugin %s raised while handling %s", self.record.name, scope.get("path"))
            raise


def plugin_routes(records: Iterable[PluginRecord]) -> list[BaseRoute]:
    """Every plugin's routes, each behind its plugin's gate.

    Plugins often keep their routes in a module-level list, shared by every app
    in the process: the gates go on copies, so that one app's switch never
    reaches another's routes.
    """
    gated: list[BaseRoute] = []
    for record in records:
        for route in record.routes:
            route = copy.copy(route)
            route.app = PluginGate(route.app, record)
            gated.append(route)
    return gated


class KernelRouter(Router):
    """Starlette's router, answering most requests without trying every route in turn.

    Starlette matches a request against each route's regular expression in
    order, and with every plugin's routes mounted that costs several
    microseconds a request. Here a request whose path and method belong to a
    route without path parameters goes straight to that route, provided no
    earlier route would have matched it fully; anything else falls through to
    Starlette's loop, so which route answers never changes.
    """

    _exact: dict[tuple[str, str], Route]
    _exact_built_for = -1  # len(self.routes) when the table was built

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            if self._exact_built_for != len(self.routes):
                self._build_exact()
            route = self._exact.get((scope["path"], scope["method"]))
            if route is not None:
                # The scope Route.matches would give a full match: the table
                # holds only parameterless paths, keyed by their method.
                scope.setdefault("router", self)
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = dict(scope.get("path_params", {}))
                await route.handle(scope, receive, send)
                return
        await super().app(scope, receive, send)

    def _build_exact(self) -> None:
        table: dict[tuple[str, str], Route] = {}
        if not any(isinstance(route, Host) for route in self.routes):
            for index, route in enumerate(self.routes):
                if not isinstance(route, Route) or route.param_convertors or not route.methods:
                    continue
                for method in route.methods:
                    probe = {"type": "http", "path": route.path, "root_path": "", "method": method, "headers": []}
                    earlier = self.routes[:index]
                    if (route.path, method) not in table and all(other.matches(probe)[0] is not Match.FULL for other in earlier):
                        table[(route.path, method)] = route
        self._exact = table
        self._exact_built_for = len(self.routes)
