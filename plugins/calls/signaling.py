"""The ``calls.*`` realtime messages: each one checked at the edge, then handed to the switchboard.

docs/calls-protocol.md is the protocol; this module is where a message that
does not follow it is refused, with an error naming the field, before it
can touch any call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kernel import ApiError, Connection, Sdp, validate_signal
from plugins.calls.switchboard import HangupReason, Switchboard

CallId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


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
    # camelCase: the browser's names (RTCIceCandidateInit).
    sdpMid: Annotated[str, StringConstraints(max_length=64)] | None = None
    sdpMLineIndex: Annotated[int, Field(ge=0, le=64)] | None = None
    usernameFragment: Annotated[str, StringConstraints(max_length=256)] | None = None


class CandidateMessage(_Message):
    # None marks the end of candidates; the field must still be there.
    candidate: Candidate | None


class Renegotiate(_Message):
    sdp: Sdp
    sdp_type: Literal["offer", "answer"]


class Hangup(_Message):
    reason: HangupReason = "hangup"


M = TypeVar("M", bound=_Message)


def parse(model: type[M], message: dict[str, Any]) -> M:
    """``message`` as ``model``; 422 ``validation_error`` naming the first bad field, 422 ``invalid_sdp`` for a non-SDP.

    The errors are the kernel's (:func:`kernel.validate_signal`), worded as the HTTP API words them.
    """
    if model is CandidateMessage and "candidate" not in message:
        # None is the end of candidates, so a missing candidate is not the same as null: say so.
        raise ApiError(422, "validation_error", "candidate: required (null for the end of candidates)", field="candidate")
    return validate_signal(model, message)


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
