"""Entitlements: plans, grants of plans to users, and the one check every feature goes through.

A feature (``calls.video``) belongs to one plan; a plan unlocks its own
features and those of the plans it includes; every user holds ``free``, and
other plans through grants with a validity window. The check is answered
from a per-process cache of each user's plans, kept no longer than the next
start or end of one of their grants, so an expired grant stops counting at
once without any job running.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, update

from kernel import audit
from kernel.errors import ApiError
from kernel.identity import User, iso
from kernel.plugin.contract import Feature
from kernel.settings import PlanSettings, SettingsError
from kernel.storage.models import grants, utcnow

if TYPE_CHECKING:
    from kernel.app import Kernel
    from kernel.plugin.manager import PluginRecord

logger = logging.getLogger("everything.entitlements")

FREE, PREMIUM = "free", "premium"
GRANT_SOURCES = ("subscription", "operator", "trial")
VERIFIED = Feature(
    "kernel.verified",
    "The verified badge",
    "A check mark next to your name everywhere, so people know the account is a subscriber's.",
    plan=PREMIUM,
    upsell="The verified badge is a premium feature. Subscribe to gain access.",
)

# Why a check refused; None when it allowed.
PREMIUM_REQUIRED = "premium_required"
NOT_ROLLED_OUT = "not_rolled_out"
SIGN_IN_REQUIRED = "sign_in_required"
PLUGIN_OFF = "plugin_disabled"
UNKNOWN_FEATURE = "unknown_feature"


@dataclass(frozen=True)
class Plan:
    """A plan as the deployment defines it."""

    name: str
    title: str
    description: str
    price: int
    currency: str
    interval: str
    includes: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "price": self.price,
            "currency": self.currency,
            "interval": self.interval,
            "includes": list(self.includes),
        }


@dataclass(frozen=True)
class FeatureInfo:
    """A declared feature with the plan the deployment puts it in."""

    feature: Feature
    plugin: str  # "kernel" for the kernel's own
    plan: str
    # Every plan that unlocks it: its own and each plan that includes that one.
    unlocked_by: frozenset[str]

    @property
    def key(self) -> str:
        return self.feature.key


@dataclass(frozen=True)
class Decision:
    """The answer of a check: truthy when allowed; otherwise why, and how to get it."""

    feature: str
    allowed: bool
    reason: str | None = None
    plan: str | None = None
    upgrade_url: str | None = None
    message: str | None = None

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def locked(self) -> bool:
        return not self.allowed

    def error(self) -> ApiError:
        """The refusal to raise: 402 when a plan unlocks it, 401 signed out, 403 or 404 otherwise."""
        assert not self.allowed
        message = self.message or "This feature is not available."
        if self.reason == PREMIUM_REQUIRED:
            return ApiError(402, PREMIUM_REQUIRED, message, feature=self.feature, plan=self.plan, upgrade_url=self.upgrade_url)
        if self.reason == SIGN_IN_REQUIRED:
            return ApiError(401, "unauthorized", message)
        if self.reason == NOT_ROLLED_OUT:
            return ApiError(403, "feature_unavailable", message, feature=self.feature)
        return ApiError(404, "not_found", message)


@dataclass(frozen=True)
class Grant:
    """One grant of a plan to a user."""

    id: int
    user_id: int
    plan: str
    source: str
    starts_at: datetime
    ends_at: datetime | None
    reference: str
    created_at: datetime
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if now < self.starts_at:
            return "scheduled"
        return "active" if self.ends_at is None or now < self.ends_at else "expired"

    def as_json(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "plan": self.plan,
            "source": self.source,
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at),
            "reference": self.reference,
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at),
            "status": self.status(now or utcnow()),
        }


def rollout_bucket(feature: str, user_id: int) -> int:
    """A user's stable place, 0 to 99, in a feature's rollout: a hash of both, the same in every process."""
    digest = hashlib.blake2b(f"{feature}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def build_plans(configured: dict[str, PlanSettings]) -> dict[str, Plan]:
    """The built-in plans merged with the operator's; SettingsError for a plan that includes an unknown one."""
    defaults = {
        FREE: PlanSettings(title="Free", description="Everything a new account can do."),
        PREMIUM: PlanSettings(title="Premium", description="Calls, the verified badge and more.", price=800, includes=[FREE]),
    }
    merged = {**defaults}
    for name, plan in configured.items():
        base = defaults.get(name)
        if base is not None:
            plan = base.model_copy(update=plan.model_dump(exclude_unset=True))
        merged[name] = plan
    plans = {}
    for name, plan in merged.items():
        for other in plan.includes:
            if other not in merged:
                raise SettingsError(f"invalid setting 'plans.{name}.includes': no plan named '{other}'")
        plans[name] = Plan(
            name=name,
            title=plan.title or name.replace("_", " ").title(),
            description=plan.description,
            price=plan.price,
            currency=plan.currency,
            interval=plan.interval,
            includes=tuple(plan.includes),
        )
    return plans


def _includes_closure(plans: dict[str, Plan], name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(plans[current].includes)
    return seen


def upsell_message(feature: Feature, plan: Plan) -> str:
    """The plain sentence of a refusal: "Audio calls are a premium feature. Subscribe to gain access." """
    if feature.upsell:
        return feature.upsell
    title = feature.title
    verb = "are" if title.endswith("s") and not title.endswith("ss") else "is"
    kind = plan.title.lower()
    article = "an" if kind[:1] in "aeiou" else "a"
    return f"{title} {verb} {article} {kind} feature. Subscribe to gain access."


@dataclass
class _Held:
    """A user's plans, valid until ``until`` (time.monotonic)."""

    plans: frozenset[str]
    until: float


@dataclass
class Catalog:
    """Plans and features as this deployment arranges them."""

    plans: dict[str, Plan]
    features: dict[str, FeatureInfo] = field(default_factory=dict)


class Entitlements:
    """Plans, grants and the check; one per kernel."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.db = kernel.db
        self.settings = kernel.settings.entitlements
        self.catalog = Catalog(build_plans(kernel.settings.plans))
        self._held: dict[int, _Held] = {}
        # Feature key -> percent of users (0-99 buckets below it) who have it; absent means all.
        self.rollouts: dict[str, int] = {}
        self._plugin_of: dict[str, PluginRecord | None] = {}

    # The catalog --------------------------------------------------------------------

    def build_catalog(self, records: Sequence[PluginRecord], fail: Callable[[PluginRecord, str], None]) -> None:
        """Place every booted plugin's features in their plans, as the operator's settings say.

        A feature naming a plan the deployment lacks fails its plugin; the
        operator's ``features`` lists may only name features that exist.
        """
        plans = self.catalog.plans
        moved: dict[str, str] = {}
        for name, configured in self.kernel.settings.plans.items():
            for key in configured.features:
                if key in moved:
                    raise SettingsError(f"invalid setting 'plans.{name}.features': '{key}' is also in plan '{moved[key]}'")
                moved[key] = name
        declared: list[tuple[Feature, PluginRecord | None]] = [(VERIFIED, None)]
        for record in records:
            for feature in record.features:
                plan = moved.get(feature.key, feature.plan)
                if plan not in plans:
                    fail(record, f"feature '{feature.key}' belongs to plan '{plan}', which this deployment does not define")
                    break
            else:
                declared += [(feature, record) for feature in record.features]
        closures = {name: _includes_closure(plans, name) for name in plans}
        features: dict[str, FeatureInfo] = {}
        for feature, owner in declared:
            plan = moved.get(feature.key, feature.plan)
            unlocked_by = frozenset(name for name, closure in closures.items() if plan in closure)
            features[feature.key] = FeatureInfo(feature, owner.name if owner else "kernel", plan, unlocked_by)
            self._plugin_of[feature.key] = owner
        booted = {record.name for record in records}
        for key, plan_name in moved.items():
            prefix = key.split(".", 1)[0]
            if key not in features and (prefix == "kernel" or prefix in booted):
                raise SettingsError(f"invalid setting 'plans.{plan_name}.features': no feature '{key}'")
        self.catalog.features = features

    def running_features(self) -> list[FeatureInfo]:
        """The features of the kernel and of every running plugin, in declaration order."""
        return [info for info in self.catalog.features.values() if self._plugin_running(info.key)]

    def plans_json(self) -> list[dict[str, Any]]:
        """Every plan with its price and the features it unlocks (its own and those of the plans it includes)."""
        features = self.running_features()
        return [
            {**plan.as_json(), "features": [info.key for info in features if plan.name in info.unlocked_by or info.plan == FREE]}
            for plan in self.catalog.plans.values()
        ]

    def _plugin_running(self, key: str) -> bool:
        record = self._plugin_of.get(key)
        return record is None or record.running

    def upgrade_url(self, feature: str | None = None) -> str:
        """Where a refused user goes: the plans page, about this feature; absolute when the base URL is known."""
        url = self.settings.upgrade_url
        if feature:
            url += ("&" if "?" in url else "?") + f"feature={feature}"
        base = self.kernel.settings.server.base_url
        if base and url.startswith("/"):
            url = base.rstrip("/") + url
        return url

    # The check ------------------------------------------------------------------------

    def check(self, user: User | None, key: str) -> Decision:
        """Whether ``user`` may use feature ``key`` now; never raises.

        Answered from memory while the user's plans are cached (warm: a
        microsecond or two); otherwise one query.
        """
        info = self.catalog.features.get(key)
        if info is None:
            return Decision(key, False, UNKNOWN_FEATURE, message=f"There is no feature '{key}'.")
        if not self._plugin_running(key):
            return Decision(key, False, PLUGIN_OFF, message=f"{info.feature.title}: switched off on this deployment.")
        if user is None:
            return Decision(key, False, SIGN_IN_REQUIRED, info.plan, message="Sign in to use this.")
        percent = self.rollouts.get(key)
        if percent is not None and rollout_bucket(key, user.id) >= percent:
            return Decision(key, False, NOT_ROLLED_OUT, message=f"{info.feature.title} is not available to your account yet.")
        if info.plan == FREE or not info.unlocked_by.isdisjoint(self.held_plans(user.id)):
            return Decision(key, True)
        plan = self.catalog.plans[info.plan]
        return Decision(key, False, PREMIUM_REQUIRED, info.plan, self.upgrade_url(key), upsell_message(info.feature, plan))

    def require(self, user: User | None, key: str) -> None:
        """Raise the refusal (402 ``premium_required`` with feature, plan and upgrade URL) unless allowed."""
        decision = self.check(user, key)
        if not decision.allowed:
            raise decision.error()

    def is_verified(self, user: User) -> bool:
        return self.check(user, VERIFIED.key).allowed

    def held_plans(self, user_id: int) -> frozenset[str]:
        """The plans a user holds now, ``free`` included."""
        held = self._held.get(user_id)
        if held is not None and held.until > time.monotonic():
            return held.plans
        return self._load(user_id)

    def is_cached(self, user_id: int) -> bool:
        """True when a check for this user needs no query."""
        held = self._held.get(user_id)
        return held is not None and held.until > time.monotonic()

    def warm(self, user_ids: Iterable[int]) -> None:
        """Load the plans of many users in one query (before rendering a list of them)."""
        now_mono = time.monotonic()
        missing = [uid for uid in set(user_ids) if (held := self._held.get(uid)) is None or held.until <= now_mono]
        if not missing:
            return
        rows = self.db.read(lambda conn: conn.execute(_GRANTS_OF_MANY, {"ids": missing}).all())
        by_user: dict[int, list[Grant]] = {uid: [] for uid in missing}
        for row in rows:
            by_user[row.user_id].append(_grant(row))
        for uid, found in by_user.items():
            self._remember(uid, found)

    def _load(self, user_id: int) -> frozenset[str]:
        rows = self.db.read(lambda conn: conn.execute(_GRANTS_OF, {"user_id": user_id}).all())
        return self._remember(user_id, [_grant(row) for row in rows])

    def _remember(self, user_id: int, found: list[Grant]) -> frozenset[str]:
        now = utcnow()
        plans = frozenset({FREE, *(grant.plan for grant in found if grant.active(now))})
        # Trust the cache until the next grant starts or ends, and never longer than the refresh interval.
        horizon = self.settings.refresh_seconds
        for grant in found:
            for moment in (grant.starts_at, grant.ends_at):
                if moment is not None and moment > now:
                    horizon = min(horizon, (moment - now).total_seconds())
        if len(self._held) > 200_000:
            self._held.clear()
        self._held[user_id] = _Held(plans, time.monotonic() + horizon)
        return plans

    def forget(self, user_id: int) -> None:
        """Drop a user's cached plans (their grants changed here or in another process)."""
        self._held.pop(user_id, None)

    # Grants ---------------------------------------------------------------------------

    def grant(
        self,
        user: User,
        plan: str,
        *,
        source: str = "operator",
        days: float | None = None,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        reference: str = "",
        actor: User | str = "system",
    ) -> Grant:
        """Grant ``plan`` to ``user`` from ``starts_at`` (now) until ``ends_at`` (or for ``days``; forever when neither).

        Recorded in the audit log in the same transaction. Plugins are told
        through ``entitlements_changed`` once the grant starts.
        """
        if plan not in self.catalog.plans or plan == FREE:
            raise ApiError(422, "unknown_plan", f"plan: no plan named '{plan}' can be granted", field="plan")
        if source not in GRANT_SOURCES:
            raise ApiError(422, "validation_error", f"source: one of {', '.join(GRANT_SOURCES)}", field="source")
        if days is not None and ends_at is not None:
            raise ApiError(422, "validation_error", "give days or ends_at, not both", field="days")
        start = starts_at or utcnow()
        if days is not None:
            if not 0 < days <= 36600:
                raise ApiError(422, "validation_error", "days: more than 0, at most 36600", field="days")
            ends_at = start + timedelta(days=days)
        if ends_at is not None and ends_at <= start:
            raise ApiError(422, "validation_error", "ends_at: must be after the start", field="ends_at")
        reference, created_at = reference[:200], utcnow()
        values = {
            "user_id": user.id,
            "plan": plan,
            "source": source,
            "starts_at": start,
            "ends_at": ends_at,
            "reference": reference,
            "created_at": created_at,
            "revoked_at": None,
            "start_notified": False,
            "end_notified": False,
        }

        def work(conn: Connection) -> int:
            grant_id = conn.execute(insert(grants).values(**values).returning(grants.c.id)).scalar_one()
            until = f" until {iso(ends_at)}" if ends_at else ""
            audit.record(conn, actor, "grant.create", f"@{user.username}", f"{plan} ({source}){until} #{grant_id}")
            return grant_id

        grant_id = self.db.write(work)
        self.forget(user.id)
        return Grant(grant_id, user.id, plan, source, start, ends_at, reference, created_at, None)

    def revoke(self, user: User, plan: str, *, actor: User | str = "system", source: str | None = None, reference: str | None = None) -> list[Grant]:
        """End every current or scheduled grant of ``plan`` to ``user`` now (only those of ``source``/``reference`` when given).

        Returns the grants revoked; none is not an error.
        """
        if plan not in self.catalog.plans:
            raise ApiError(422, "unknown_plan", f"plan: no plan named '{plan}'", field="plan")
        now = utcnow()
        condition = and_(
            grants.c.user_id == user.id,
            grants.c.plan == plan,
            grants.c.revoked_at.is_(None),
            or_(grants.c.ends_at.is_(None), grants.c.ends_at > now),
        )
        if source is not None:
            condition = and_(condition, grants.c.source == source)
        if reference is not None:
            condition = and_(condition, grants.c.reference == reference)

        def work(conn: Connection) -> list[Grant]:
            found = [_grant(row) for row in conn.execute(select(grants).where(condition)).all()]
            if found:
                conn.execute(update(grants).where(grants.c.id.in_([g.id for g in found])).values(revoked_at=now))
                ids = ", ".join(f"#{g.id}" for g in found)
                audit.record(conn, actor, "grant.revoke", f"@{user.username}", f"{plan} {ids}")
            return found

        revoked = self.db.write(work)
        self.forget(user.id)
        return revoked

    def settle(
        self,
        conn: Connection,
        user: User,
        *,
        source: str,
        reference: str,
        plan: str | None,
        ends_at: datetime | None,
        actor: User | str = "system",
    ) -> bool:
        """Make the user's current grants from ``source``/``reference`` exactly one grant of ``plan`` until ``ends_at``.

        For a billing plugin that mirrors an outside subscription: it writes
        inside ``conn``'s transaction (beside the plugin's own record of the
        event), and calling it again with the same answer changes nothing,
        so replays and out-of-order events converge. ``plan`` None, or an
        ``ends_at`` already past, leaves no such grant. Returns whether
        anything changed; after the commit call :meth:`Kernel.grants_changed`.
        """
        if plan is not None and (plan not in self.catalog.plans or plan == FREE):
            raise ApiError(422, "unknown_plan", f"plan: no plan named '{plan}' can be granted", field="plan")
        now = utcnow()
        if ends_at is not None and ends_at <= now:
            plan = None
        current = and_(
            grants.c.user_id == user.id,
            grants.c.source == source,
            grants.c.reference == reference[:200],
            grants.c.revoked_at.is_(None),
            or_(grants.c.ends_at.is_(None), grants.c.ends_at > now),
        )
        found = [_grant(row) for row in conn.execute(select(grants).where(current)).all()]
        if plan is not None and len(found) == 1 and found[0].plan == plan:
            # The same plan goes on (a renewal, a cancellation at the period's end): move its end,
            # so that plugins hear of no loss and regain, and the grant's history stays one grant.
            if found[0].ends_at == ends_at:
                return False
            conn.execute(update(grants).where(grants.c.id == found[0].id).values(ends_at=ends_at))
            until = iso(ends_at) if ends_at else "no end"
            audit.record(conn, actor, "grant.extend", f"@{user.username}", f"{plan} ({source}) #{found[0].id} until {until}")
            return True
        if found:
            conn.execute(update(grants).where(grants.c.id.in_([g.id for g in found])).values(revoked_at=now))
            ids = ", ".join(f"#{g.id}" for g in found)
            audit.record(conn, actor, "grant.revoke", f"@{user.username}", f"{', '.join(sorted({g.plan for g in found}))} ({source}) {ids}")
        if plan is not None:
            values = {
                "user_id": user.id,
                "plan": plan,
                "source": source,
                "starts_at": now,
                "ends_at": ends_at,
                "reference": reference[:200],
                "created_at": now,
                "revoked_at": None,
                "start_notified": False,
                "end_notified": False,
            }
            grant_id = conn.execute(insert(grants).values(**values).returning(grants.c.id)).scalar_one()
            until = f" until {iso(ends_at)}" if ends_at else ""
            audit.record(conn, actor, "grant.create", f"@{user.username}", f"{plan} ({source}){until} #{grant_id}")
        return True

    def grants_of(self, user_id: int) -> list[Grant]:
        """Every grant the user ever had, newest first."""
        rows = self.db.read(lambda conn: conn.execute(_GRANTS_OF.order_by(grants.c.id.desc()), {"user_id": user_id}).all())
        return [_grant(row) for row in rows]

    # Telling plugins ---------------------------------------------------------------------

    def claim_due_events(self, limit: int = 200) -> list[tuple[Grant, str]]:
        """Grants that started, ended or were revoked and whose event nobody has told yet, claimed for this process.

        Each flag is set by an UPDATE that only one process can win, so every
        event is told once however many processes run.
        """
        now = utcnow()
        due = or_(
            and_(grants.c.start_notified.is_(False), grants.c.starts_at <= now, grants.c.revoked_at.is_(None)),
            and_(
                grants.c.end_notified.is_(False),
                or_(grants.c.revoked_at.is_not(None), and_(grants.c.ends_at.is_not(None), grants.c.ends_at <= now)),
            ),
        )

        # Look before taking the write lock: most of the time nothing is due.
        due_ids = self.db.read(lambda conn: conn.execute(select(grants.c.id).where(due).limit(limit)).scalars().all())
        if not due_ids:
            return []

        def work(conn: Connection) -> list[tuple[Grant, str]]:
            events: list[tuple[Grant, str]] = []
            for row in conn.execute(select(grants).where(grants.c.id.in_(due_ids), due).order_by(grants.c.id)).all():
                grant = _grant(row)
                ended = grant.revoked_at is not None or (grant.ends_at is not None and grant.ends_at <= now)
                if not row.start_notified and grant.revoked_at is None and _claim(conn, grant.id, "start_notified", revoked=False):
                    events.append((grant, "started"))
                if ended:
                    # Whether anyone told the start is read from the row under its lock, not from the
                    # select above: another process may have told it since. If nobody did, it never
                    # will: a grant revoked before it was told to have started ends silently.
                    told_start = not _claim(conn, grant.id, "start_notified")
                    if _claim(conn, grant.id, "end_notified") and told_start:
                        events.append((grant, "revoked" if grant.revoked_at is not None else "ended"))
            return events

        return self.db.write(work)


def _claim(conn: Connection, grant_id: int, flag: str, revoked: bool | None = None) -> bool:
    """Set one of the grant's flags; True only for the one transaction that set it (False also when ``revoked`` does not hold)."""
    condition = and_(grants.c.id == grant_id, grants.c[flag].is_(False))
    if revoked is False:
        condition = and_(condition, grants.c.revoked_at.is_(None))
    return conn.execute(update(grants).where(condition).values({flag: True})).rowcount == 1


def _grant(row: Any) -> Grant:
    return Grant(row.id, row.user_id, row.plan, row.source, row.starts_at, row.ends_at, row.reference, row.created_at, row.revoked_at)


_GRANT_COLUMNS = (
    grants.c.id,
    grants.c.user_id,
    grants.c.plan,
    grants.c.source,
    grants.c.starts_at,
    grants.c.ends_at,
    grants.c.reference,
    grants.c.created_at,
    grants.c.revoked_at,
)
_GRANTS_OF = select(*_GRANT_COLUMNS).where(grants.c.user_id == bindparam("user_id"))
_GRANTS_OF_MANY = select(*_GRANT_COLUMNS).where(grants.c.user_id.in_(bindparam("ids", expanding=True)), grants.c.revoked_at.is_(None))

