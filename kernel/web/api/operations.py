"""Operations endpoints: liveness, readiness and the plugin list."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.web.requests import get_kernel
from kernel.web.responses import JSONResponse


async def healthz(request: Request) -> Response:
    """Alive: the process answers. Says nothing of the database."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready: the database answers, the plugins have started and a configured Redis bus has not been away too long; 503 otherwise.

    The bus is ``in_process`` without Redis; with it ``ok``, ``unreachable``
    (still ready: local delivery goes on) or, after ``bus.down_after_seconds``, ``down``.
    """
    kernel = get_kernel(request)
    database = await anyio.to_thread.run_sync(kernel.db.ping)
    bus = kernel.realtime.bus.health()
    checks = {
        "database": "ok" if database else "unreachable",
        "plugins": "started" if kernel.ready else "starting",
        "bus": bus.state,
    }
    ready = database and kernel.ready and bus.ready
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503)


async def plugins(request: Request) -> Response:
    """Every discovered plugin with version, state and reason."""
    kernel = get_kernel(request)
    return JSONResponse({"results": [record.as_json() for record in kernel.plugins.records.values()]})


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/api/plugins", plugins, methods=["GET"]),
]
