"""ICE for plugins: the servers a client gets, TURN credentials, our own peers' addresses, trickled candidates.

Calls and Spaces both connect browsers to aiortc peers, and both must
answer the same questions the same way: which STUN and TURN servers a
client gets, which addresses the server's peers offer, what a browser's
trickled candidate is to aiortc. The answers live here, once, so that a
plugin needs no other plugin to have them.

TURN credentials follow the "TURN REST API" scheme that coturn implements
with ``use-auth-secret``: the username is ``<expiry unix time>:<user id>``
and the password is base64(HMAC-SHA1(shared secret, username)). The TURN
server recomputes it and refuses it after the expiry, so a leaked
credential is worth little and the app never talks to the TURN server.

Importing this module patches aioice's host address look-up (see
:func:`host_addresses`), for every peer of the process.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Annotated, Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceCandidate, RTCIceServer
from aiortc.sdp import candidate_from_sdp
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator


def _ip_addresses(addresses: list[str]) -> list[str]:
    for address in addresses:
        ipaddress.ip_address(address)  # ValueError names the bad one
    return addresses


# A settings field: the only addresses the server's own peers offer as ICE host candidates; empty
# means every address of the machine but loopback, as aiortc does by itself. Give it a default:
# ``host_addresses: HostAddresses = Field(default_factory=list)``.
HostAddresses = Annotated[list[str], AfterValidator(_ip_addresses)]


class IceSettings(BaseModel):
    """The ICE settings of a plugin whose clients connect peers: subclass it for ``[plugins.<name>]``.

    One model, so that every plugin that hands out ICE servers takes the
    same keys and refuses the same mistakes with the same words.
    """

    model_config = ConfigDict(extra="forbid")

    # STUN servers for clients ("stun:stun.example.org:3478"). None by default: no third party
    # learns who calls whom unless the operator chooses one.
    stun_urls: list[str] = Field(default_factory=list)
    # TURN servers ("turn:turn.example.org:3478?transport=udp", "turns:..."), with coturn's
    # use-auth-secret: credentials are minted per user from this shared secret and expire.
    turn_urls: list[str] = Field(default_factory=list)
    turn_secret: SecretStr | None = None
    turn_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 86400)
    # The only addresses the server's own peers offer as ICE host candidates.
    host_addresses: HostAddresses = Field(default_factory=list)

    @field_validator("stun_urls")
    @classmethod
    def _stun(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("stun:", "stuns:")):
                raise ValueError(f"'{url}' is not a stun: or stuns: URL")
        return urls

    @field_validator("turn_urls")
    @classmethod
    def _turn(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("turn:", "turns:")):
                raise ValueError(f"'{url}' is not a turn: or turns: URL")
        return urls

    def model_post_init(self, _context: object) -> None:
        """Refuse TURN servers without the secret: clients would be handed servers they cannot authenticate to."""
        if self.turn_urls and self.turn_secret is None:
            raise ValueError("turn_urls needs turn_secret, the static-auth-secret the TURN server shares")


def turn_credentials(secret: str, user_id: int, ttl_seconds: int, now: float | None = None) -> tuple[str, str, int]:
    """``(username, password, expires_at)`` for ``user_id``: what coturn's ``use-auth-secret`` recomputes and checks.

    Minted per user and short-lived, so that the app never has to tell the
    TURN server who may relay, and a credential that leaks dies at its
    expiry. ``now`` lets a test mint one that has already expired.
    """
    expires_at = int(now if now is not None else time.time()) + ttl_seconds
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode(), expires_at


def ice_servers(settings: IceSettings, user_id: int) -> dict[str, Any]:
    """The operator's ICE servers for one user, in the shape a browser's ``RTCPeerConnection`` takes.

    Answered as ``{"iceServers": [...], "ttl": seconds}``: the TURN
    credentials in it are this user's and expire, so a client asks again
    after ``ttl``. With no servers configured the list is empty, and no
    third party learns who connects to whom.
    """
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


def parse_candidate(init: dict[str, Any] | None) -> RTCIceCandidate | None:
    """An aiortc candidate from a browser's ``RTCIceCandidateInit``; None means the end of candidates.

    Browsers trickle candidates in this shape and aiortc takes only its own
    type, so whatever relays them to an aiortc peer converts here. Browsers
    also mark the end with an empty ``candidate`` string. Raises ValueError
    on anything that is not a candidate line, so that a bad one is refused
    rather than handed to aiortc.
    """
    if init is None:
        return None
    if not isinstance(init, dict):
        raise ValueError("a candidate is an object or null")
    if not init.get("candidate"):
        return None
    line = str(init["candidate"]).removeprefix("a=").removeprefix("candidate:")
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

    aiortc offers no such option, and a server must offer its public
    address (a test, loopback) and nothing else. Wrap ``setLocalDescription``
    (where aiortc gathers) in it: ``with host_addresses(["127.0.0.1"]): ...``.
    Other peers in the process, in other tasks, are not affected.
    """
    token = _named_addresses.set(tuple(addresses) if addresses else None)
    try:
        yield
    finally:
        _named_addresses.reset(token)

