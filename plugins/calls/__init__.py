"""Calls: 1:1 audio and video calls by username, with call screening and an echo test.

The media flows between the two parties' browsers (WebRTC); the server
carries the signaling over the kernel's realtime channel, keeps the call
records and answers calls to ``@echo`` with a peer of its own. The protocol
is docs/calls-protocol.md; the choices are in docs/calls.md.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request

from kernel import Connection, Feature, Kernel, Manifest, NavItem, ProfileAction, ProfileSection, SandboxWorld, User, hookimpl
from plugins.calls import api, pages, seed, signaling
from plugins.calls.service import CALLS, Calls
from plugins.calls.settings import CallsSettings

__version__ = "1.0.0"
HERE = Path(__file__).parent


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="calls",
        title="Calls",
        version=__version__,
        description="Audio and video calls by username, with call screening.",
        settings_model=CallsSettings,
        migrations=HERE / "migrations",
        templates=HERE / "templates",
        static=HERE / "static",
    )


@hookimpl
def register_features() -> list[Feature]:
    upsell = "Audio and video calls are a premium feature. Subscribe to gain access."
    return [
        Feature("calls.audio", "Audio calls", "Call anyone by username, no phone number needed.", plan="premium", upsell=upsell),
        Feature("calls.video", "Video calls", "Video calls by username, from any browser.", plan="premium", upsell=upsell),
    ]


@hookimpl
def register_routes(kernel: Kernel) -> list:
    CALLS.put(kernel, Calls(kernel, kernel.plugin_settings("calls")))
    return [*api.routes, *pages.routes]


@hookimpl
def register_realtime(kernel: Kernel) -> dict:
    return signaling.handlers(CALLS.of(kernel).switchboard)


@hookimpl
async def startup(kernel: Kernel) -> None:
    await CALLS.of(kernel).switchboard.start()


@hookimpl
async def shutdown(kernel: Kernel) -> None:
    switched_off = kernel.plugin_status("calls") == "off"
    await CALLS.of(kernel).switchboard.stop("plugin_disabled" if switched_off else "disconnected")


@hookimpl
async def realtime_connected(connection: Connection) -> None:
    await CALLS.of(connection.kernel).switchboard.connected(connection)


@hookimpl
async def realtime_disconnected(connection: Connection) -> None:
    await CALLS.of(connection.kernel).switchboard.disconnected(connection)


@hookimpl
def nav_items(user: User | None) -> list[NavItem]:
    return pages.nav_items(user)


@hookimpl
def profile_actions(request: Request, viewer: User | None, profile: User) -> list[ProfileAction]:
    return pages.profile_actions(request, viewer, profile)


@hookimpl
def page_assets(request: Request, user: User | None) -> list[str]:
    return pages.page_assets(request, user)


@hookimpl
async def settings_sections(request: Request, user: User) -> list[ProfileSection]:
    return await pages.settings_sections(request, user)


@hookimpl
async def seed_sandbox(kernel: Kernel, world: SandboxWorld) -> None:
    """The sandbox's past calls among the cast, and the bots that answer calls with a tone and a test picture."""
    await seed.seed(kernel, world)
