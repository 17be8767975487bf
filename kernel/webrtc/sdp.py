"""SDP sanity for signaling: a cheap check that an offer or answer is a session description, and the refusal when not.

Signaling only carries SDP from one side to the other (a browser, a
server peer, another user); what it must do is refuse what is plainly not a
session description, or too large to be one, before it reaches anyone, and
refuse it the same way in every plugin. It does so without parsing the SDP
and without aiortc, so that a plugin's signaling loads no media library.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, StringConstraints

from kernel.errors import ApiError, validate

# Room for a browser's offer (a few kilobytes, more with many codecs) with a wide margin; one limit,
# so that every plugin's protocol states the same one (docs/spaces-protocol.md).
MAX_SDP = 32_768

# A signaling message's ``sdp`` field: a non-empty string of at most MAX_SDP characters.
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP)]

M = TypeVar("M", bound=BaseModel)


def looks_like_sdp(sdp: str) -> bool:
    """A cheap structural check (RFC 8866): a version line first, an origin, and at least one media section.

    Signaling only carries SDP from one side to the other; this refuses
    what is plainly not a session description before it reaches a peer or
    another user, without parsing it fully.
    """
    lines = sdp.replace("\r\n", "\n").split("\n")
    return lines[0] == "v=0" and any(line.startswith("o=") for line in lines) and any(line.startswith("m=") for line in lines)


def require_sdp(sdp: str) -> str:
    """``sdp``, or the 422 ``invalid_sdp`` that every plugin's signaling answers for one that is not a session description.

    One refusal, so that a client sees the same code and words whichever
    plugin it signals through.
    """
    if not looks_like_sdp(sdp):
        raise ApiError(422, "invalid_sdp", "sdp: not a session description (it must start with v=0 and describe media).", field="sdp")
    return sdp


def validate_signal(model: type[M], message: dict[str, Any]) -> M:
    """``message`` as ``model``; 422 ``validation_error`` naming the first bad field, 422 ``invalid_sdp`` for a non-SDP.

    :func:`kernel.validate` first, then :func:`require_sdp` on the model's
    ``sdp`` field when it has one that is set: the checks every signaling
    message goes through, worded as the HTTP API words them.
    """
    parsed = validate(model, message)
    sdp = getattr(parsed, "sdp", None)
    if sdp is not None:
        require_sdp(sdp)
    return parsed
