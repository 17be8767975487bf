"""The ``calls.*`` realtime messages: each one checked at the edge, then handed to the switchboard.

docs/calls-protocol.md is the protocol; this module is where a message that
does not follow it is refused, with an error naming the field, before it
can touch any call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from kernel import ApiError, Connection
from plugins.calls.switchboard import HANGUP_REASONS, Switchboard

MAX_SDP = 32_768

CallId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP)]


class _Message(BaseModel):
    # Strict: a number where a string belongs is refused, not converted.
    model_config = ConfigDict(strict=True, extra="ignore")

    call_id: CallId


class Invite(_Message):
    to: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    media: Literal["audio", "video"]
    sdp: Sdp


class Answer(_Message):
    sdp: Sdp


class Candidate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    candidate: Annotated[str, StringConstraints(max_length=1024)]
    sdpMid: Annotated[str, StringConstraints(max_length=64)] | None = None  # noqa: N815 - the browser's name
    sdpMLineIndex: Annotated[int, Field(ge=0, le=64)] | None = None  # noqa: N815
    usernameFragment: Annotated[str, StringConstraints(max_length=256)] | None = None  # noqa: N815


class CandidateMessage(_Message):
    # None marks the end of candidates; the field must still be there.
    candidate: Candidate | None


class Renegotiate(_Message):
    sdp: Sdp
    sdp_type: Literal["offer", "answer"]


class Hangup(_Message):
    reason: Literal[HANGUP_REASONS] = "hangup"  # type: ignore[valid-type]


M = Any


def parse(model: type[M], message: dict[str, Any]) -> M:
    """``message`` as ``model``; 422 ``validation_error`` naming the first bad field, 422 ``invalid_sdp`` for a non-SDP."""
    if model is CandidateMessage and "candidate" not in message:
        raise ApiError(422, "validation_error", "candidate: required (null for the end of candidates)", field="candidate")
    try:
        parsed = model.model_validate(message)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "message"
        raise ApiError(422, "validation_error", f"{field}: {first['msg']}", field=field) from None
    sdp = getattr(parsed, "sdp", None)
    if sdp is not None and not looks_like_sdp(sdp):
        raise ApiError(422, "invalid_sdp", "sdp: not a session description (it must start with v=0 and describe media).", field="sdp")
    return parsed


def looks_like_sdp(sdp: str) -> bool:
    """A cheap structural check (RFC 8866): a version line first, an origin, and at least one media section."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    return lines[0] == "v=0" and any(line.startswith("o=") for line in lines) and any(line.startswith("m=") for line in lines)


def handlers(board: Switchboard) -> dict[str, Callable[[Connection, dict[str, Any]], Awaitable[dict[str, Any]]]]:
    """The plugin's realtime handlers, bound to one switchboard."""

    async def invite(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(Invite, message)
        return await board.handle(board.invite(connection, m.call_id, m.to, m.media, m.sdp))

    async def ringing(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        await board.handle(board.ringing(connection, parse(_Message, message).call_id))
        return {}

    async def answer(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(Answer, message)
        return await board.handle(board.answer(connection, m.call_id, m.sdp))

    async def candidate(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(CandidateMessage, message)
        found = m.candidate.model_dump(exclude_none=True) if m.candidate is not None else None
        await board.handle(board.candidate(connection, m.call_id, found))
        return {}

    async def renegotiate(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(Renegotiate, message)
        await board.handle(board.renegotiate(connection, m.call_id, m.sdp, m.sdp_type))
        return {}

    async def reject(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        await board.handle(board.reject(connection, parse(_Message, message).call_id))
        return {}

    async def hangup(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        m = parse(Hangup, message)
        await board.handle(board.hangup(connection, m.call_id, m.reason))
        return {}

    async def resume(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        return await board.handle(board.resume(connection, parse(_Message, message).call_id))

    return {
        "calls.invite": invite,
        "calls.ringing": ringing,
        "calls.answer": answer,
        "calls.candidate": candidate,
        "calls.renegotiate": renegotiate,
        "calls.reject": reject,
        "calls.hangup": hangup,
        "calls.resume": resume,
    }
