"""A well-behaved plugin implementing every hook and recording each call on the kernel it serves."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import (
    Feature,
    JSONResponse,
    Kernel,
    Manifest,
    NavItem,
    ProfileAction,
    User,
    get_kernel,
    hookimpl,
    render,
)


class RecorderSettings(BaseModel):
    greeting: str = "hello"


def calls(kernel: Kernel) -> list[str]:
    """The hooks called so far on ``kernel``, in order."""
    return kernel.__dict__.setdefault("recorder_calls", [])


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="recorder",
        title="Recorder",
        version="1.2.3",
        description="Records every hook call.",
        settings_model=RecorderSettings,
        templates=Path(__file__).parent / "recorder_templates",
        static=Path(__file__).parent / "recorder_static",
    )


@hookimpl
def register_features(kernel: Kernel) -> list[Feature]:
    calls(kernel).append("register_features")
    return [Feature("recorder.echo", "Echo", "Says things back.", plan="free")]


async def ping(request: Request) -> Response:
    kernel = get_kernel(request)
    return JSONResponse({"pong": True, "greeting": kernel.plugin_settings("recorder").greeting})


async def explode(request: Request) -> Response:
    raise RuntimeError("the recorder plugin broke on purpose")


async def page(request: Request) -> Response:
    return render(request, "recorder/page.html", {"message": "Recorder page"})


@hookimpl
def register_routes(kernel: Kernel) -> list[Route]:
    calls(kernel).append("register_routes")
    return [
        Route("/api/recorder/ping", ping),
        Route("/api/recorder/explode", explode),
        Route("/recorder/", page),
        Route("/recorder/explode", explode),
    ]


@hookimpl
def nav_items(request: Request, user: User | None) -> list[NavItem]:
    calls(get_kernel(request)).append("nav_items")
    return [NavItem("Recorder", "/recorder/", order=50)]


@hookimpl
def profile_actions(request: Request, viewer: User | None, profile: User) -> list[ProfileAction]:
    calls(get_kernel(request)).append("profile_actions")
    return [ProfileAction(f"Wave at {profile.username}", f"/recorder/?wave={profile.username}", order=30)]


@hookimpl
async def startup(kernel: Kernel) -> None:
    calls(kernel).append("startup")


@hookimpl
async def shutdown(kernel: Kernel) -> None:
    calls(kernel).append("shutdown")


@hookimpl
def user_created(kernel: Kernel, user: User) -> None:
    calls(kernel).append(f"user_created:{user.username}")
