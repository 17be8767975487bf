"""A plugin that boots but breaks the contract's softer rules: a feature without a description, a page
template of its own making, and a table no migration creates. ``everything plugins check`` must say each."""

from pathlib import Path

from kernel import Feature, Manifest, hookimpl

HERE = Path(__file__).parent


@hookimpl
def manifest() -> Manifest:
    return Manifest(name="careless", title="Careless", version="1.0", description="Breaks the soft rules.", templates=HERE / "templates")


@hookimpl
def register_features() -> list[Feature]:
    return [Feature("careless.thing", "A thing", " ")]
