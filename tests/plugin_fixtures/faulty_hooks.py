"""A plugin whose collecting hooks raise: the pages must still render, without its contributions."""

from starlette.requests import Request

from kernel import Manifest, NavItem, ProfileSection, User, hookimpl


@hookimpl
def manifest() -> Manifest:
    return Manifest(name="faulty_hooks", title="Faulty hooks", version="1.0", description="Raises in its page hooks.")


@hookimpl
def nav_items(user: User | None) -> list[NavItem]:
    raise RuntimeError("nav_items is broken")


@hookimpl
async def profile_sections(request: Request, viewer: User | None, profile: User) -> list[ProfileSection]:
    raise RuntimeError("profile_sections is broken")
