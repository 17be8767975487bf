"""The ``spaces.*`` realtime messages: each one checked at the edge, then handed to the service.

docs/spaces-protocol.md is the protocol; a message that does not follow it
is refused here, with an error naming the field, before it touches a Space.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from kernel import ApiError, Connection, realtime_feature_required
from plugins.spaces.service import Spaces

MAX_SDP = 32_768

SpaceId = Annotated[int, Field(ge=1, le=2**53)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP)]


class _Message(BaseModel):
    # Strict: a string where a number belongs is refused, not converted.
    model_config = ConfigDict(strict=True, extra="ignore")

    # Optional past join: the Space the connection is in. When given it must be that one.
    space_id: SpaceId | None = None


class Join(_Message):
    space_id: SpaceId  # type: ignore[assignment]
    sdp: Sdp


class Target(_Message):
    user: Username


class OptionalTarget(_Message):
    user: Username | None = None


class SetRole(Target):
    role: Literal["cohost", "speaker", "listener"]


class Mute(OptionalTarget):
    muted: bool = True


class React(_Message):
    emoji: Annotated[str, StringConstraints(min_length=1, max_length=16)]


class Record(_Message):
    on: bool


M = Any


def parse(model: type[M], message: dict[str, Any]) -> M:
    """``message`` as ``model``; 422 ``validation_error`` naming the first bad field, 422 ``invalid_sdp`` for a non-SDP."""
    try:
        parsed = model.model_validate(message)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "message"
        raise ApiError(422, "validation_error", f"{field}: {first['msg']}", field=field) from None
    sdp = getattr(parsed, "sdp", None)
    if sdp is not None and not looks_like_sdp(sdp):
        raise ApiError(
            422, "invalid_sdp", "sdp: not a session description (it must start with v=0 and describe media).", field="sdp"
        )
    return parsed


def looks_like_sdp(sdp: str) -> bool:
    """A cheap structural check (RFC 8866): a version line first, an origin, and at least one media section."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    return lines[0] == "v=0" and any(line.startswith("o=") for line in lines) and any(line.startswith("m=") for line in lines)


Handler = Callable[[Connection, dict[str, Any]], Awaitable[dict[str, Any]]]


def handlers(service: Spaces) -> dict[str, Handler]:
    """The plugin's realtime handlers, bound to one service."""

    async def target_of(connection: Connection, username: str | None) -> int:
        return connection.user.id if username is None else await service.target(username)

    async def join(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(Join, message)
        return await service.join(connection, m.space_id, m.sdp)

    async def leave(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        return await service.leave(connection, parse(_Message, message).space_id)

    async def raise_hand(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        return await service.change(connection, parse(_Message, message).space_id, "raise_hand")

    async def lower_hand(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(OptionalTarget, message)
        return await service.change(connection, m.space_id, "lower_hand", target=await target_of(connection, m.user))

    async def invite(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(Target, message)
        return await service.change(connection, m.space_id, "invite", target=await service.target(m.user))

    async def set_role(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(SetRole, message)
        return await service.change(connection, m.space_id, "set_role", target=await service.target(m.user), role=m.role)

    async def mute(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(Mute, message)
        return await service.change(connection, m.space_id, "mute", target=await target_of(connection, m.user), muted=m.muted)

    async def remove(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(Target, message)
        return await service.change(connection, m.space_id, "remove", target=await service.target(m.user))

    async def react(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(React, message)
        return await service.react(connection, m.space_id, m.emoji)

    @realtime_feature_required("spaces.record")
    async def start_recording(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        return await service.record(connection, parse(Record, message).space_id, True)

    async def record(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(Record, message)
        if m.on:
            return await start_recording(connection, message)
        # Stopping needs no plan: a host whose premium lapsed can always stop recording.
        return await service.record(connection, m.space_id, False)

    return {
        "spaces.join": join,
        "spaces.leave": leave,
        "spaces.raise_hand": raise_hand,
        "spaces.lower_hand": lower_hand,
        "spaces.invite": invite,
        "spaces.set_role": set_role,
        "spaces.mute": mute,
        "spaces.remove": remove,
        "spaces.react": react,
        "spaces.record": record,
    }
