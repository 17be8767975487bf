"""A plugin whose start-up raises."""

from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kernel import Manifest, hookimpl


@hookimpl
def manifest() -> Manifest:
    return Manifest(name="failing_startup", title="Failing start-up", version="1.0", description="Cannot connect.")


@hookimpl
def register_routes() -> list[Route]:
    return [Route("/api/failing_startup/hi", lambda request: PlainTextResponse("hi"))]


@hookimpl
async def startup() -> None:
    raise ConnectionError("could not reach the upstream service")


def hello(connection, message) -> dict:  # type: ignore[no-untyped-def]
    return {"said": "this handler ran although start-up failed"}


@hookimpl
def register_realtime() -> dict:
    return {"failing_startup.hi": hello}
