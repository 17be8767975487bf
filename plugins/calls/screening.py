"""Who may call whom: each user's call settings, the caller's plan, blocks.

The one decision behind ``GET /api/calls/can-call/{username}`` and every
``calls.invite``. A refusal is a reason code and nothing more, so that a
caller never learns which of the callee's rules kept them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from kernel import ApiError, Decision, User, utcnow
from plugins.calls.models import call_settings

if TYPE_CHECKING:
    from kernel import Kernel

ALLOW_CHOICES = ("everyone", "verified", "following", "contacts")
DEFAULT_ALLOW = ("following", "contacts")
MEDIA = ("audio", "video")
ECHO = "echo"

# Refusal reasons, in the order they are checked.
UNKNOWN_USER = "unknown_user"
SELF = "self"
PREMIUM_REQUIRED = "premium_required"
BLOCKED = "blocked"
CALLS_OFF = "calls_off"
NOT_ALLOWED = "not_allowed"

MESSAGES = {
    UNKNOWN_USER: "There is no such user.",
    SELF: "You cannot call yourself; call @echo to test your microphone and camera.",
    BLOCKED: "You cannot call this account.",
    CALLS_OFF: "This person does not take calls.",
    NOT_ALLOWED: "This person takes calls only from people they choose.",
}


@dataclass(frozen=True)
class CallSettings:
    """One user's call settings: calls on or off, and who may call."""

    enabled: bool = True
    allow: tuple[str, ...] = DEFAULT_ALLOW

    def json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "allow": list(self.allow)}


@dataclass(frozen=True)
class Verdict:
    """May this caller call this callee with this media: ``reason`` is None when yes."""

    reason: str | None
    decision: Decision | None = None  # the entitlement refusal, for premium_required

    @property
    def allowed(self) -> bool:
        return self.reason is None

    def error(self) -> ApiError:
        """The refusal as an error: the entitlement's own 402 for premium_required, else 403 (404 for unknown_user)."""
        assert self.reason is not None
        if self.decision is not None:
            return self.decision.error()
        return ApiError(404 if self.reason == UNKNOWN_USER else 403, self.reason, MESSAGES[self.reason])


def normalise_allow(allow: list[str]) -> tuple[str, ...]:
    """``allow`` checked and in a stable order; 422 naming a bad value."""
    unknown = [value for value in allow if value not in ALLOW_CHOICES]
    if unknown:
        raise ApiError(422, "validation_error", f"allow: '{unknown[0]}' is not one of {', '.join(ALLOW_CHOICES)}", field="allow")
    return tuple(choice for choice in ALLOW_CHOICES if choice in allow)


class Screening:
    """Call settings and the screening decision, for one kernel. Blocking methods: run them off the event loop."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.db = kernel.db

    def settings_of(self, user_id: int) -> CallSettings:
        row = self.db.read(lambda conn: conn.execute(select(call_settings).where(call_settings.c.user_id == user_id)).first())
        if row is None:
            return CallSettings()
        return CallSettings(enabled=row.enabled, allow=tuple(value for value in row.allow.split(",") if value))

    def save(self, user_id: int, enabled: bool, allow: list[str]) -> CallSettings:
        chosen = CallSettings(enabled=enabled, allow=normalise_allow(allow))
        values = {"enabled": chosen.enabled, "allow": ",".join(chosen.allow), "updated_at": utcnow()}

        def work(conn: Any) -> None:
            updated = conn.execute(call_settings.update().where(call_settings.c.user_id == user_id).values(**values)).rowcount
            if not updated:
                conn.execute(call_settings.insert().values(user_id=user_id, **values))

        self.db.write(work)
        return chosen

    def verdict(self, caller: User, callee: User | None, media: str) -> Verdict:
        """Whether ``caller`` may place a ``media`` call to ``callee`` now."""
        if callee is None:
            return Verdict(UNKNOWN_USER)
        if callee.id == caller.id:
            return Verdict(SELF)
        if callee.username.lower() == ECHO:
            return Verdict(None)  # the echo test is free for everyone
        decision = self.kernel.entitlements.check(caller, f"calls.{media}")
        if not decision.allowed:
            return Verdict(PREMIUM_REQUIRED if decision.reason == PREMIUM_REQUIRED else "feature_unavailable", decision)
        relation = self.kernel.address_book.relation(callee.id, caller.id)
        if relation["blocking"] or relation["blocked_by"]:
            return Verdict(BLOCKED)
        settings = self.settings_of(callee.id)
        if not settings.enabled:
            return Verdict(CALLS_OFF)
        allow = settings.allow
        if (
            "everyone" in allow
            or ("following" in allow and relation["following"])
            or ("contacts" in allow and relation["in_contacts"])
            or ("verified" in allow and self.kernel.is_verified(caller))
        ):
            return Verdict(None)
        return Verdict(NOT_ALLOWED)
