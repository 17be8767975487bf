"""The ``spaces.*`` realtime messages: each one checked at the edge, then handed to the service.

docs/spaces-protocol.md is the protocol; a message that does not follow it
is refused here, with an error naming the field, before it touches a Space.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kernel import Connection, Sdp, realtime_feature_required, validate_signal
from plugins.spaces.service import Spaces

SpaceId = Annotated[int, Field(ge=1, le=2**53)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class _Message(BaseModel):
    # Strict: a string where a number belongs is refused, not converted.
    model_config = ConfigDict(strict=True, extra="ignore")

    # Optional past join: the Space the connection is in. When given it must be that one.
    space_id: SpaceId | None = None


class Join(_Message):
    space_id: SpaceId
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


M = TypeVar("M", bound=_Message)


def parse(model: type[M], message: dict[str, Any]) -> M:
    """``message`` as ``model``; 422 ``validation_error`` naming the first bad field, 422 ``invalid_sdp`` for a non-SDP.

    The errors are the kernel's (:func:`kernel.validate_signal`), worded as the HTTP API words them.
    """
    return validate_signal(model, message)


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
