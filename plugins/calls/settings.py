"""``[plugins.calls]``: ring and reconnect timings, the ICE servers handed to clients, the server peers' addresses."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class CallsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # How long an invite rings before it ends as "timeout".
    ring_timeout_seconds: float = Field(60, gt=0, le=600)
    # How long a call outlives a party's dropped socket, waiting for calls.resume.
    reconnect_grace_seconds: float = Field(20, gt=0, le=600)
    # An echo test ends by itself after this long.
    echo_max_seconds: float = Field(300, gt=0)
    # STUN servers for clients ("stun:stun.example.org:3478"). None by default: no third party
    # learns who calls whom unless the operator chooses one.
    stun_urls: list[str] = Field(default_factory=list)
    # TURN servers ("turn:turn.example.org:3478?transport=udp", "turns:..."), with coturn's
    # use-auth-secret: credentials are minted per user from this shared secret and expire.
    turn_urls: list[str] = Field(default_factory=list)
    turn_secret: SecretStr | None = None
    turn_ttl_seconds: int = Field(3600, ge=60, le=7 * 86400)
    # The only addresses the server's own peers (the echo test) offer as ICE host candidates;
    # empty means every address of the machine but loopback, as aiortc does by itself.
    host_addresses: list[str] = Field(default_factory=list)

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

    @field_validator("host_addresses")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            ipaddress.ip_address(address)  # ValueError names the bad one
        return addresses

    def model_post_init(self, _context: object) -> None:
        if self.turn_urls and self.turn_secret is None:
            raise ValueError("turn_urls needs turn_secret, the static-auth-secret the TURN server shares")
