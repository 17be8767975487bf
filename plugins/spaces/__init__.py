"""Spaces: live audio rooms with hosts, speakers and listeners.

The server keeps the stage (who is host, co-host, speaker or listener, raised
hands, microphones) and carries the audio itself through a media backend
(:mod:`plugins.spaces.media`). The protocol is docs/spaces-protocol.md.
"""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
from starlette.requests import Request

from kernel import Connection, Feature, Kernel, Manifest, NavItem, SandboxWorld, User, hookimpl
from plugins.spaces import api, pages, seed, signaling
from plugins.spaces.service import SPACES, Spaces
from plugins.spaces.settings import SpacesSettings

__version__ = "0.2.0"
HERE = Path(__file__).parent


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="spaces",
        title="Spaces",
        version=__version__,
        description="Live audio rooms with hosts, speakers and listeners.",
        settings_model=SpacesSettings,
        migrations=HERE / "migrations",
        templates=HERE / "templates",
        static=HERE / "static",
    )


@hookimpl
def register_features() -> list[Feature]:
    return [
        Feature(
            "spaces.record",
            "Record Spaces",
            "Hosts keep a recording of their Space.",
            plan="premium",
            upsell="Recording Spaces is a premium feature. Subscribe to gain access.",
        ),
    ]


@hookimpl
def register_routes(kernel: Kernel) -> list:
    settings = kernel.plugin_settings("spaces")
    SPACES.put(kernel, Spaces(kernel, settings))
    return [*api.routes, *pages.routes]


@hookimpl
def register_realtime(kernel: Kernel) -> dict:
    return signaling.handlers(SPACES.of(kernel))


@hookimpl
async def startup(kernel: Kernel) -> None:
    spaces = SPACES.of(kernel)
    await anyio.to_thread.run_sync(spaces.reconcile)
    # Not awaited: uploading what a stop left behind must not keep /readyz at 503.
    spaces.publish_leftovers()


@hookimpl
async def shutdown(kernel: Kernel) -> None:
    await SPACES.of(kernel).close()


@hookimpl
async def realtime_disconnected(connection: Connection) -> None:
    await SPACES.of(connection.kernel).disconnected(connection)


@hookimpl
def nav_items(user: User | None) -> list[NavItem]:
    return pages.nav_items(user)


@hookimpl
def page_assets(request: Request, user: User | None) -> list[str]:
    return pages.page_assets(request, user)


@hookimpl
async def seed_sandbox(kernel: Kernel, world: SandboxWorld) -> None:
    await seed.seed(kernel, world)
