"""Polls inside posts: an example third-party plugin for Everything, installed as its own package.

It shows each part of the plugin contract a feature team meets: a manifest
with a migration branch and templates, a premium feature (creating polls),
JSON routes and a page in its own namespace, and a post widget (the
``post_widgets`` hook) that shows a post's polls on the post's page, and
its part of ``everything sandbox``'s demo world (the ``seed_sandbox`` hook).
"""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
from starlette.requests import Request

from everything_polls import api, seed
from everything_polls.service import POLLS, Polls
from kernel import Feature, Kernel, Manifest, ProfileSection, SandboxWorld, User, get_kernel, hookimpl

__version__ = "1.0.0"
HERE = Path(__file__).parent


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="polls",
        title="Polls",
        version=__version__,
        description="Polls inside posts: a question, 2 to 4 answers, one vote each.",
        requires=("feed",),
        migrations=HERE / "migrations",
        templates=HERE / "templates",
    )


@hookimpl
def register_features() -> list[Feature]:
    return [
        Feature(
            "polls.create",
            "Create polls",
            "Add a poll to your posts.",
            plan="premium",
            upsell="Creating polls is a premium feature. Subscribe to gain access.",
        )
    ]


@hookimpl
def register_routes(kernel: Kernel) -> list:
    POLLS.put(kernel, Polls(kernel))
    return list(api.routes)


@hookimpl
async def post_widgets(request: Request, viewer: User | None, post: dict) -> list[ProfileSection]:
    found = await anyio.to_thread.run_sync(POLLS.of(get_kernel(request)).on_post, viewer, int(post["id"]))
    return [ProfileSection(poll["question"], "polls/widget.html", {"poll": poll}, order=100) for poll in found]


@hookimpl
async def seed_sandbox(kernel: Kernel, world: SandboxWorld) -> None:
    await seed.seed(kernel, world)
