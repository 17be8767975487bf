"""What operators do, shared by the admin API, the admin pages and the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select, update

from kernel import audit
from kernel.entitlements import GRANT_SOURCES
from kernel.errors import ApiError
from kernel.identity import USER_COLUMNS, User, user_from_row
from kernel.pagination import Page, decode_cursor, encode_cursor
from kernel.storage.models import users

if TYPE_CHECKING:
    from kernel.app import Kernel


class RolloutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    percent: int = Field(ge=0, le=100)


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: str = Field(min_length=1, max_length=32)
    days: float | None = Field(default=None, gt=0, le=36600)
    source: str = Field(default="operator", pattern="^(" + "|".join(GRANT_SOURCES) + ")$")
    reference: str = Field(default="", max_length=200)


def set_admin(kernel: Kernel, user: User, is_admin: bool, actor: User | str) -> None:
    """Give or take operator rights, audited, effective in every process at once; a no-op (and no audit line) when already so."""
    if isinstance(actor, User) and actor.id == user.id and not is_admin:
        raise ApiError(409, "cannot_demote_self", "Ask another operator to remove your operator rights.")

    def work(conn: Connection) -> None:
        # Decided on the row, not on a cached User that another process may have outdated.
        changed = conn.execute(update(users).where(users.c.id == user.id, users.c.is_admin != is_admin).values(is_admin=is_admin))
        if changed.rowcount:
            audit.record(conn, actor, "user.set_admin" if is_admin else "user.remove_admin", f"@{user.username}")

    kernel.db.write(work)
    # Every process drops its copy of the account at once: rights taken away stop working everywhere.
    kernel.identity.account_changed(user.id)


def find_users(kernel: Kernel, q: str, cursor: str | None, limit: int) -> Page:
    """The directory's search for ``q``; without one, every account newest first (what operators see before searching)."""
    if q:
        return kernel.address_book.search(q, limit, cursor)
    return _newest_users(kernel, cursor, limit)


def _newest_users(kernel: Kernel, cursor: str | None, limit: int) -> Page:
    after = decode_cursor(cursor, int)
    query = select(*USER_COLUMNS).order_by(users.c.id.desc()).limit(limit + 1)
    if after is not None:
        query = query.where(users.c.id < after[0])
    rows = kernel.db.read(lambda conn: conn.execute(query).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([user_from_row(row) for row in rows], encode_cursor(rows[-1].id) if more else None)


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
