"""A plugin with a typo in a hook name: register_route instead of register_routes."""

from kernel import Manifest, hookimpl


@hookimpl
def manifest() -> Manifest:
    return Manifest(name="misspelled_hook", title="Misspelled hook", version="1.0", description="Has a typo.")


@hookimpl
def register_route() -> list[object]:
    return []
