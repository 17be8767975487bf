"""What operators do, shared by the admin API, the admin pages and the CLI."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, update
from starlette.requests import HTTPConnection

from kernel import audit
from kernel.app import Kernel
from kernel.errors import ApiError
from kernel.http import require_user
from kernel.identity import User
from kernel.models import users


def require_admin(connection: HTTPConnection) -> User:
    """The signed-in operator; 401 when signed out, 403 ``admin_required`` for everyone else."""
    user = require_user(connection)
    if not user.is_admin:
        raise ApiError(403, "admin_required", "Only operators may do this.")
    return user


def set_admin(kernel: Kernel, user: User, is_admin: bool, actor: User | str) -> None:
    """Give or take operator rights, audited; a no-op when already so."""
    if user.is_admin == is_admin:
        return
    if isinstance(actor, User) and actor.id == user.id and not is_admin:
        raise ApiError(409, "cannot_demote_self", "Ask another operator to remove your operator rights.")

    def work(conn: Connection) -> None:
        conn.execute(update(users).where(users.c.id == user.id).values(is_admin=is_admin))
        audit.record(conn, actor, "user.set_admin" if is_admin else "user.remove_admin", f"@{user.username}")

    kernel.db.write(work)
    kernel.identity.forget_user(user.id)


def plugin_json(kernel: Kernel, name: str) -> dict[str, Any]:
    """A plugin as the admin sees it: state, reason, whether it can be switched, its features."""
    record = kernel.plugins.records[name]
    return {
        **record.as_json(),
        "switchable": record.booted,
        "features": [info.key for info in kernel.entitlements.catalog.features.values() if info.plugin == name],
    }


def feature_json(kernel: Kernel, key: str) -> dict[str, Any]:
    info = kernel.entitlements.catalog.features[key]
    record = kernel.plugins.records.get(info.plugin)
    return {
        "key": key,
        "title": info.feature.title,
        "description": info.feature.description,
        "plugin": info.plugin,
        "plan": info.plan,
        "rollout_percent": kernel.entitlements.rollouts.get(key, 100),
        "running": record is None or record.running,
    }


def user_admin_json(kernel: Kernel, user: User) -> dict[str, Any]:
    """A user with the plans they hold now and whether they are an operator (no grants: see the user's own answer)."""
    return {"user": kernel.user_json(user), "plans": kernel.plans_of(user), "is_admin": user.is_admin}
