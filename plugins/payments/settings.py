"""``[plugins.payments]``: the deployment's currency."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PaymentsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # ISO 4217; every amount is an integer in its minor unit (cents for USD).
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    # The largest single transfer, in minor units.
    max_transfer: int = Field(1_000_000_00, ge=1)
