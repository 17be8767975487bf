"""A plugin that requires a plugin nobody installed."""

from kernel import Manifest, hookimpl


@hookimpl
def manifest() -> Manifest:
    return Manifest(name="needs_ghost", title="Needs ghost", version="1.0", description="Requires ghost.", requires=("ghost",))
