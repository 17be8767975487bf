"""A plugin that requires the recorder plugin."""

from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kernel import Manifest, hookimpl


@hookimpl
def manifest() -> Manifest:
    return Manifest(name="needs_recorder", title="Needs recorder", version="1.0", description="Requires recorder.", requires=("recorder",))


@hookimpl
def register_routes() -> list[Route]:
    return [Route("/api/needs_recorder/hi", lambda request: PlainTextResponse("hi"))]
