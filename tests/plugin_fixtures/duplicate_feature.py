"""A plugin that declares a feature key the recorder plugin already declared."""

from kernel import Feature, Manifest, hookimpl


@hookimpl
def manifest() -> Manifest:
    return Manifest(name="duplicate_feature", title="Duplicate feature", version="1.0", description="Redeclares recorder.echo.")


@hookimpl
def register_features() -> list[Feature]:
    return [Feature("recorder.echo", "Echo again", "A second echo.")]
