"""The kernel's own contributions through the plugin hooks: its navigation and profile actions."""

from __future__ import annotations

from starlette.requests import Request

from kernel.identity import User
from kernel.plugin.contract import NavItem, ProfileAction
from kernel.plugin.hookspecs import hookimpl


@hookimpl
def nav_items(user: User | None) -> list[NavItem]:
    items = [NavItem("People", "/directory", order=90)]
    if user is not None:
        items += [
            NavItem("Contacts", "/contacts", order=91, requires_login=True),
            NavItem("Premium", "/premium", order=95, requires_login=True),
            NavItem("Profile", f"/@{user.username}", order=98, requires_login=True),
            NavItem("Settings", "/settings", order=99, requires_login=True),
        ]
        if user.is_admin:
            items.append(NavItem("Admin", "/admin", order=97, requires_login=True))
    return items


@hookimpl
def profile_actions(request: Request, viewer: User | None, profile: User) -> list[ProfileAction]:
    base = f"/@{profile.username}"
    if viewer is None:
        return [ProfileAction("Follow", f"/login?next={base}", order=10, style="primary")]
    relation = getattr(request.state, "relation", None) or {}
    if relation.get("blocking"):
        return [ProfileAction("Unblock", f"{base}/unblock", method="post", order=90, style="danger")]
    if relation.get("blocked_by"):
        return []
    following = relation.get("following")
    in_contacts = relation.get("in_contacts")
    return [
        ProfileAction(
            "Unfollow" if following else "Follow",
            f"{base}/{'unfollow' if following else 'follow'}",
            method="post",
            order=10,
            style="secondary" if following else "primary",
        ),
        ProfileAction(
            "Remove from contacts" if in_contacts else "Add to contacts",
            f"{base}/{'uncontact' if in_contacts else 'contact'}",
            method="post",
            order=20,
        ),
        ProfileAction("Block", f"{base}/block", method="post", order=90, style="danger"),
    ]
