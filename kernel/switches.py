"""The operator's run-time switches: plugins on or off, and features rolled out to a share of users.

Switches live in the database, so they survive restarts and every process
sees them: a process applies a change it makes at once and tells the others
over the bus (the command line tells running servers over Redis), and every
process re-reads the switches every ``entitlements.refresh_seconds`` in case
a message was missed or there is no Redis bus to carry it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from kernel import audit
from kernel.errors import ApiError
from kernel.identity import User
from kernel.storage.database import Database
from kernel.storage.models import feature_rollouts, plugin_switches, utcnow

T = TypeVar("T")


@dataclass(frozen=True)
class SwitchState:
    """What the operator has switched: plugins off, and rollout percentages below 100."""

    plugins_off: frozenset[str] = frozenset()
    rollouts: dict[str, int] = field(default_factory=dict)


def read_state(db: Database) -> SwitchState:
    """The switches as stored."""

    def work(conn: Connection) -> SwitchState:
        off = conn.execute(select(plugin_switches.c.plugin).where(plugin_switches.c.enabled.is_(False))).scalars().all()
        rollouts = {row.feature: row.percent for row in conn.execute(select(feature_rollouts.c.feature, feature_rollouts.c.percent))}
        return SwitchState(frozenset(off), rollouts)

    return db.read(work)


def set_plugin(db: Database, plugin: str, enabled: bool, actor: User | str) -> bool:
    """Store a plugin's switch and audit it; False when it already was so (nothing is written)."""

    def work(conn: Connection) -> bool:
        current = conn.execute(select(plugin_switches.c.enabled).where(plugin_switches.c.plugin == plugin)).scalar()
        if (current is None and enabled) or current == enabled:
            return False
        if current is None:
            conn.execute(insert(plugin_switches).values(plugin=plugin, enabled=enabled, updated_at=utcnow()))
        else:
            conn.execute(update(plugin_switches).where(plugin_switches.c.plugin == plugin).values(enabled=enabled, updated_at=utcnow()))
        audit.record(conn, actor, "plugin.enable" if enabled else "plugin.disable", plugin)
        return True

    return _write_retrying(db, work)


def set_rollout(db: Database, feature: str, percent: int, actor: User | str) -> None:
    """Roll ``feature`` out to ``percent`` of users (100: everyone) and audit it."""
    if not 0 <= percent <= 100:
        raise ApiError(422, "validation_error", "percent: a whole number from 0 to 100", field="percent")

    def work(conn: Connection) -> None:
        before = conn.execute(select(feature_rollouts.c.percent).where(feature_rollouts.c.feature == feature)).scalar()
        conn.execute(delete(feature_rollouts).where(feature_rollouts.c.feature == feature))
        if percent < 100:
            conn.execute(insert(feature_rollouts).values(feature=feature, percent=percent, updated_at=utcnow()))
        audit.record(conn, actor, "feature.rollout", feature, f"{100 if before is None else before}% -> {percent}%")

    _write_retrying(db, work)


def _write_retrying(db: Database, work: Callable[[Connection], T]) -> T:
    # Two operators switching the same thing at once both find no row and both
    # insert; the loser tries again and now sees the winner's row.
    try:
        return db.write(work)
    except IntegrityError:
        return db.write(work)
