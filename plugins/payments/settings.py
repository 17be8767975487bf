"""``[plugins.payments]``: the deployment's currency, limits and billing provider."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class StripeSettings(BaseModel):
    """``[plugins.payments.stripe]``: the account that takes the money when ``billing = "stripe"``."""

    model_config = ConfigDict(extra="forbid")

    secret_key: SecretStr
    # The endpoint's signing secret (whsec_…) from the Stripe dashboard.
    webhook_secret: SecretStr
    # Only to point the library at another server, such as localstripe in tests.
    api_base: str | None = None
    # A Stripe Price id per plan name (or a list: the first is sold, the others,
    # say a yearly price, count as the plan too); a plan without one is sold with
    # an inline price built from its [plans.<name>] price, currency and interval.
    prices: dict[str, str | list[str]] = Field(default_factory=dict)
    # How old a webhook's signed timestamp may be, in seconds (Stripe's own default).
    tolerance_seconds: int = Field(default=300, ge=1)


class PaymentsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # ISO 4217; every amount is an integer in its minor unit (cents for USD).
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    # The largest single transfer, in minor units.
    max_transfer: int = Field(default=1_000_000_00, ge=1)
    # The annual interest rate on savings as a fraction (0.04 is 4 %), paid daily as rate/365.
    # 0 by default: the interest account is the operator's own money, so paying it is their choice.
    savings_rate: float = Field(default=0.0, ge=0, le=1)
    # The smallest and largest top-up, in minor units.
    min_topup: int = Field(default=1_00, ge=1)
    max_topup: int = Field(default=10_000_00, ge=1)
    # Who takes the money: "sandbox" (the embedded default: a checkout page in
    # the app that takes test cards, no account anywhere) or "stripe".
    billing: Literal["sandbox", "stripe"] = "sandbox"
    stripe: StripeSettings | None = None
    # After a failed renewal payment, how long the subscriber keeps their plan.
    grace_days: float = Field(default=7, ge=0, le=60)

    @model_validator(mode="after")
    def _stripe_needs_keys(self) -> PaymentsSettings:
        if self.billing == "stripe" and self.stripe is None:
            raise ValueError('billing = "stripe" needs [plugins.payments.stripe] secret_key and webhook_secret')
        if self.min_topup > self.max_topup:
            raise ValueError("min_topup is more than max_topup")
        return self
