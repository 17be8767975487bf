"""``[plugins.spaces]``: how far ahead a Space may be scheduled, where recordings go."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SpacesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A scheduled Space starts at most this many days from now.
    max_schedule_days: int = Field(14, ge=1, le=365)
    # Recordings go under <data_dir>/<recordings_dir>/<space id>/, one Ogg/Opus file per take.
    recordings_dir: str = Field("spaces-recordings", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    # spaces.state names at most this many listeners (raised hands first); the rest are paged by the API.
    state_listeners: int = Field(100, ge=1, le=10_000)
    # Listeners coming and going are told to the others at most this often, in seconds: in a Space of
    # thousands a burst of joins is one state per interval for everyone, not one per join.
    listener_churn_seconds: float = Field(0.25, ge=0, le=60)
    # The only addresses the server's media peers offer as ICE host candidates; empty means every
    # address of the machine but loopback, as aiortc does by itself.
    host_addresses: list[str] = Field(default_factory=list)

    @field_validator("host_addresses")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            ipaddress.ip_address(address)  # ValueError names the bad one
        return addresses
