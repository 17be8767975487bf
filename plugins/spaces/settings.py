"""``[plugins.spaces]``: how far ahead a Space may be scheduled, where recordings go."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kernel import HostAddresses


class SpacesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A scheduled Space starts at most this many days from now.
    max_schedule_days: int = Field(default=14, ge=1, le=365)
    # Recordings go under <data_dir>/<recordings_dir>/<space id>/, one Ogg/Opus file per take.
    recordings_dir: str = Field(default="spaces-recordings", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    # spaces.state names at most this many listeners (raised hands first); the rest are paged by the API.
    state_listeners: int = Field(default=100, ge=1, le=10_000)
    # Listeners coming and going are told to the others at most this often, in seconds: in a Space of
    # thousands a burst of joins is one state per interval for everyone, not one per join.
    listener_churn_seconds: float = Field(default=0.25, ge=0, le=60)
    # The only addresses the server's media peers offer as ICE host candidates; empty means every
    # address of the machine but loopback, as aiortc does by itself.
    host_addresses: HostAddresses = Field(default_factory=list)
