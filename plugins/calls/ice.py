"""ICE: the servers handed to clients, TURN credentials, and which addresses our own peers offer.

TURN credentials follow the "TURN REST API" scheme that coturn implements
with ``use-auth-secret``: the username is ``<expiry unix time>:<user id>``
and the password is base64(HMAC-SHA1(shared secret, username)). The TURN
server recomputes it and refuses it after the expiry, so a leaked
credential is worth little and the app never talks to the TURN server.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.sdp import candidate_from_sdp

from plugins.calls.settings import CallsSettings


def turn_credentials(secret: str, user_id: int, ttl_seconds: int, now: float | None = None) -> tuple[str, str, int]:
    """``(username, password, expires_at)`` for ``user_id``, valid for ``ttl_seconds`` from ``now``."""
    expires_at = int(now if now is not None else time.time()) + ttl_seconds
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode(), expires_at


def ice_servers(settings: CallsSettings, user_id: int) -> dict[str, Any]:
    """What ``GET /api/calls/ice-servers`` answers: RTCIceServer dictionaries and how long they last."""
    servers: list[dict[str, Any]] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls and settings.turn_secret is not None:
        username, password, _ = turn_credentials(settings.turn_secret.get_secret_value(), user_id, settings.turn_ttl_seconds)
        servers.append({"urls": list(settings.turn_urls), "username": username, "credential": password})
    return {"iceServers": servers, "ttl": settings.turn_ttl_seconds}


def rtc_configuration(servers: list[dict[str, Any]]) -> RTCConfiguration:
    """An aiortc configuration from RTCIceServer dictionaries; an empty list means no STUN at all.

    aiortc falls back on a public STUN server when given none, which would
    tell a third party about every call: always pass the list explicitly.
    """
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential")) for s in servers]
    )


def parse_candidate(init: dict[str, Any] | None) -> Any:
    """An aiortc ``RTCIceCandidate`` from an ``RTCIceCandidateInit`` dictionary; None means end of candidates.

    Browsers also mark the end with an empty ``candidate`` string. Raises
    ValueError on anything that is not a candidate line.
    """
    if init is None:
        return None
    if not isinstance(init, dict):
        raise ValueError("a candidate is an object or null")
    if not init.get("candidate"):
        return None
    line = str(init["candidate"])
    if line.startswith("a="):
        line = line[2:]
    if line.startswith("candidate:"):
        line = line[len("candidate:") :]
    try:
        candidate = candidate_from_sdp(line)
    except (AssertionError, IndexError, ValueError):
        raise ValueError(f"not an ICE candidate: {init['candidate']!r}") from None
    candidate.sdpMid = init.get("sdpMid")
    candidate.sdpMLineIndex = init.get("sdpMLineIndex")
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        raise ValueError("a candidate needs sdpMid or sdpMLineIndex")
    return candidate


# aioice gathers host candidates from every interface but loopback, with no option to choose.
# It looks them up through a module function while gathering, inside the task that called
# setLocalDescription: a context variable lets each peer name its own addresses.
_named_addresses: ContextVar[tuple[str, ...] | None] = ContextVar("everything_ice_host_addresses", default=None)
_aioice_host_addresses = aioice.ice.get_host_addresses


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    named = _named_addresses.get()
    if named is None:
        return _aioice_host_addresses(use_ipv4, use_ipv6)
    return [address for address in named if (use_ipv6 if ":" in address else use_ipv4)]


aioice.ice.get_host_addresses = _host_addresses


@contextlib.contextmanager
def host_addresses(addresses: list[str] | tuple[str, ...] | None) -> Iterator[None]:
    """Within this block, peers gather host candidates on exactly ``addresses`` (all but loopback when None or empty).

    Wrap ``setLocalDescription`` (where aiortc gathers) in it: ``with host_addresses(["127.0.0.1"]): ...``.
    """
    token = _named_addresses.set(tuple(addresses) if addresses else None)
    try:
        yield
    finally:
        _named_addresses.reset(token)
