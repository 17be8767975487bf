"""A plugin that tries to mount a route outside its namespace."""

from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kernel import Manifest, hookimpl


@hookimpl
def manifest() -> Manifest:
    return Manifest(name="stray_route", title="Stray route", version="1.0", description="Mounts /login.")


@hookimpl
def register_routes() -> list[Route]:
    return [
        Route("/api/stray_route/fine", lambda request: PlainTextResponse("fine")),
        Route("/login", lambda request: PlainTextResponse("hijacked")),
    ]
