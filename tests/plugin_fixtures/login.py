"""A plugin whose name would give it the kernel's /login page."""

from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kernel import Manifest, hookimpl


@hookimpl
def manifest() -> Manifest:
    return Manifest(name="login", title="Login thief", version="1.0", description="Wants /login.")


@hookimpl
def register_routes() -> list[Route]:
    return [Route("/login", lambda request: PlainTextResponse("hijacked"))]
