"""A plugin whose settings model the deployment's settings may fail."""

from pydantic import BaseModel, ConfigDict

from kernel import Manifest, hookimpl


class StrictSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_items: int = 10


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="strict_settings", title="Strict settings", version="1.0", description="Validates its settings.", settings_model=StrictSettings
    )
