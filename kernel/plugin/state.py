"""A plugin's state on each kernel, by a typed key: :class:`PluginState`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from kernel.app import Kernel

T = TypeVar("T")


class PluginState(Generic[T]):
    """The one object a plugin keeps on each kernel (its service), typed, under the plugin's name.

    State hangs off the kernel, never a module global, so two deployments live
    side by side in one process. Declare the key once, next to the service::

        CALLS = PluginState[Calls]("calls")

        @hookimpl
        def register_routes(kernel):
            CALLS.put(kernel, Calls(kernel, kernel.plugin_settings("calls")))
            ...

        def calls_of(request) -> Calls:
            return CALLS.of(get_kernel(request))

    A plugin that uses another's public service declares a key of its own
    for it, typed by a ``Protocol`` of just what it uses (plugins never
    import each other), and asks with :meth:`get`, which answers None unless
    that plugin runs::

        FEED = PluginState[CashtagPosts]("feed")
        feed = FEED.get(kernel)
    """

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin

    def put(self, kernel: Kernel, value: T) -> T:
        """Keep ``value`` as the plugin's state on ``kernel`` (once, at boot: ``register_routes`` is the place); returns it."""
        kernel._plugin_state[self.plugin] = value
        return value

    def of(self, kernel: Kernel) -> T:
        """The plugin's state on ``kernel``; LookupError naming the plugin when it has put none."""
        try:
            value: T = kernel._plugin_state[self.plugin]
        except KeyError:
            raise LookupError(f"plugin '{self.plugin}' keeps no state on this kernel: is it enabled?") from None
        return value

    def get(self, kernel: Kernel) -> T | None:
        """The plugin's state on ``kernel`` while the plugin runs; None when it is off, failed, absent or keeps none."""
        if kernel.plugin_status(self.plugin) != "enabled":
            return None
        value: T | None = kernel._plugin_state.get(self.plugin)
        return value

    def __repr__(self) -> str:
        return f"PluginState({self.plugin!r})"
