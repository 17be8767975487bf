"""Discovering, checking and calling plugins.

Bundled plugins are found by name under the ``plugins`` package; third-party
ones through the entry-point group ``everything.plugins``. Every discovered
plugin is listed with a state:

- ``enabled``: running;
- ``disabled``: discovered, but the deployment's ``plugins.enabled`` leaves it out;
- ``failed``: enabled, but refused or broken, with a reason that names it;
- ``off``: enabled and sound, but switched off at run time by an operator
  (or because a plugin it requires is off); switching it on needs no restart.

A plugin fails alone. Its neighbours, and the kernel, come up regardless.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
import logging
import traceback
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy
from pydantic import BaseModel
from starlette.routing import Mount, Route, WebSocketRoute

from kernel.plugin import hookspecs
from kernel.plugin.contract import PLUGIN_NAME, Feature, Manifest
from kernel.settings import PluginsSettings, SettingsError, validate_plugin_settings

if TYPE_CHECKING:
    from kernel.app import Kernel

logger = logging.getLogger("everything.plugins")

BUNDLED_PLUGINS: tuple[str, ...] = ("calls", "feed", "payments", "spaces", "trading")
ENTRY_POINT_GROUP = "everything.plugins"

ENABLED, DISABLED, FAILED, OFF = "enabled", "disabled", "failed", "off"

# The kernel's own hook implementations are registered under this name.
KERNEL = "kernel"

# What a plugin's routes may be: each has one path, checked against its namespace, and an app to gate.
PluginRoute = (Route, WebSocketRoute, Mount)

# Every hook the contract declares: the only names a hook call may use.
SPEC_NAMES = frozenset(name for name, value in vars(hookspecs).items() if hasattr(value, f"{hookspecs.PROJECT_NAME}_spec"))

# A plugin's name becomes its URL namespace: these would take the kernel's own paths.
KERNEL_PATHS = frozenset(
    {"admin", "api", "auth", "contacts", "directory", "healthz", "kernel", "login", "logout", "me", "metrics",
     "notifications", "premium", "readyz", "settings", "signup", "static", "users", "ws"}
)


class PluginFailure(Exception):
    """Raised while checking a plugin; the message becomes its reason."""


@dataclass
class PluginRecord:
    """What the kernel knows about one discovered plugin."""

    name: str
    source: str  # "bundled", "entry point" or "given"
    module: Any = None
    # What pluggy holds for the plugin: its hook implementations, the collecting ones guarded (see _guarded).
    registered: object | None = None
    manifest: Manifest | None = None
    state: str = ENABLED
    reason: str | None = None
    settings: BaseModel | None = None
    features: list[Feature] = field(default_factory=list)
    routes: list[Route | WebSocketRoute | Mount] = field(default_factory=list)
    realtime: dict[str, Any] = field(default_factory=dict)
    started: bool = False

    @property
    def running(self) -> bool:
        return self.state == ENABLED

    @property
    def booted(self) -> bool:
        """Passed every boot check: running, or switched off and ready to come back on."""
        return self.state in (ENABLED, OFF)

    @property
    def title(self) -> str:
        return self.manifest.title if self.manifest else self.name

    def as_json(self) -> dict[str, Any]:
        manifest = self.manifest
        return {
            "name": self.name,
            "title": manifest.title if manifest else self.name,
            "version": manifest.version if manifest else None,
            "description": manifest.description if manifest else None,
            "requires": list(manifest.requires) if manifest else [],
            "source": self.source,
            "state": self.state,
            "reason": self.reason,
        }


def describe_exception(exc: BaseException) -> str:
    """An exception as a failure reason shows it: ``ValueError: what went wrong``."""
    return f"{type(exc).__name__}: {exc}"


class Implementations:
    """What pluggy registers for one plugin: its hook implementations as attributes (see :meth:`Plugins._guarded`)."""

    def __init__(self, plugin: str, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.plugin = plugin
        for attribute, function in functions.items():
            setattr(self, attribute, function)

    def __repr__(self) -> str:
        return f"<hook implementations of {self.plugin}>"


class Hooks:
    """The contract's hooks by attribute, over some of the registered plugins: ``relay.nav_items(request=..., user=...)``.

    Each attribute is a pluggy ``HookCaller``: calling it calls every
    implementation among those plugins, in plugin order, and returns their
    answers as a list (None left out), or the first answer for a
    ``firstresult`` hook. A name that :mod:`kernel.plugin.hookspecs` does not
    declare raises AttributeError, so a misspelled hook never passes silently.
    """

    def __init__(self, pm: pluggy.PluginManager, left_out: Iterable[object] = ()) -> None:
        self._pm = pm
        self._left_out = list(left_out)
        self._callers: dict[str, pluggy.HookCaller] = {}

    def __getattr__(self, name: str) -> pluggy.HookCaller:
        caller = self._callers.get(name)
        if caller is None:
            if name not in SPEC_NAMES:
                raise AttributeError(f"no hook named '{name}' in kernel.plugin.hookspecs")
            caller = self._callers[name] = self._pm.subset_hook_caller(name, self._left_out)
        return caller


class PluginHooks:
    """The contract's hooks of one plugin: ``hooks.startup(kernel=kernel)`` answers that plugin's result, or None.

    For the hooks whose answer the kernel must pin on a plugin (its
    manifest, its routes, its start-up): what such a call raises is the
    plugin's own failure.
    """

    def __init__(self, relay: Hooks) -> None:
        self._relay = relay

    def __getattr__(self, name: str) -> Callable[..., Any]:
        caller = getattr(self._relay, name)

        def call(**kwargs: Any) -> Any:
            answers = caller(**kwargs)
            if not isinstance(answers, list):  # a firstresult hook answers one value already
                return answers
            return answers[0] if answers else None

        return call


class Plugins:
    """The plugin manager of one application: pluggy plus the records above."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self._running_hooks: Hooks | None = None

    @property
    def hook(self) -> Hooks:
        """The hooks of the kernel and of every running plugin (not of those switched off or failed)."""
        if self._running_hooks is None:
            idle = [record.registered for record in self.records.values() if record.registered is not None and not record.running]
            self._running_hooks = Hooks(self.pm, idle)
        return self._running_hooks

    def hook_of(self, record: PluginRecord) -> PluginHooks:
        """The hooks of ``record``'s plugin alone, whatever its state: each call answers its result, or None."""
        others = [plugin for plugin in self.pm.get_plugins() if plugin is not record.registered]
        return PluginHooks(Hooks(self.pm, others))

    def _states_changed(self) -> None:
        self._running_hooks = None

    # Discovery ---------------------------------------------------------------

    def discover(self, given: Mapping[str, Any] | None = None) -> None:
        """Find bundled, entry-point and explicitly given plugins, importing each."""
        for name in BUNDLED_PLUGINS:
            self._add(name, "bundled", lambda name=name: importlib.import_module(f"plugins.{name}"))
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in self.records:
                logger.warning("entry point %s ignored: a plugin of that name exists", entry_point.name)
                continue
            self._add(entry_point.name, "entry point", entry_point.load)
        for name, target in (given or {}).items():
            loader = (lambda target=target: importlib.import_module(target)) if isinstance(target, str) else (lambda target=target: target)
            self._add(name, "given", loader)

    def _add(self, name: str, source: str, load: Any) -> None:
        record = PluginRecord(name=name, source=source)
        self.records[name] = record
        try:
            record.module = load()
        except BaseException as exc:  # a plugin's import may raise anything, even SystemExit
            self._fail(record, f"failed to import: {describe_exception(exc)}")

    # Boot checks -------------------------------------------------------------

    def boot(self, settings: PluginsSettings, kernel: Kernel) -> None:
        """Run every boot-time check in order; afterwards only sound plugins are enabled."""
        records = list(self.records.values())
        for record in records:
            if record.module is not None:
                self._register(record)
        for record in records:
            if record.state != FAILED:
                self._read_manifest(record)

        self._apply_enabled_list(settings)
        self._check_unknown_sections(settings)

        for record in self.running():
            self._check_hook_names(record)
        for record in self.running():
            self._guard(record, self._validate_settings, record, settings.plugin_section(record.name))
        self._check_requires()
        self._order_by_requires()

        declared: dict[str, str] = {}
        for record in self.running():
            self._guard(record, self._collect_features, record, kernel, declared)
        for record in self.running():
            self._guard(record, self._collect_routes, record, kernel)
        for record in self.running():
            self._guard(record, self._collect_realtime, record, kernel)
        self._check_requires()
        for record in self.records.values():
            if record.state != ENABLED and record.registered is not None:
                self.pm.unregister(record.registered)
                record.registered = None
        self._states_changed()

    def _register(self, record: PluginRecord) -> None:
        try:
            record.registered = self._guarded(record.name, record.module)
            self.pm.register(record.registered, name=record.name)
        except PluginFailure as exc:
            record.registered = None
            self._fail(record, str(exc))
        except Exception as exc:
            record.registered = None
            self._fail(record, f"refused by the plugin manager: {exc}")

    def _guarded(self, name: str, plugin: object) -> Implementations:
        """What pluggy registers for ``plugin``: its hook implementations, each collecting one guarded.

        pluggy stops a hook call at the first implementation that raises; the
        kernel wants one broken plugin left out of a page, not the page gone.
        So every implementation of a collecting or event hook is wrapped to
        log its plugin's error and answer None instead (a coroutine it returns
        likewise). The per-plugin hooks (:data:`hookspecs.PER_PLUGIN_HOOKS`) stay bare:
        their errors fail that plugin. Wrappers are refused: a plugin does not
        get to intercept the kernel's or other plugins' answers.
        """
        found: dict[str, Any] = {}
        for attribute in dir(plugin):
            options = self.pm.parse_hookimpl_opts(plugin, attribute)
            if options is None:
                continue
            if options.get("wrapper") or options.get("hookwrapper"):
                raise PluginFailure(f"hook wrappers are not supported ('{attribute}')")
            function = getattr(plugin, attribute)
            hook_name = options.get("specname") or attribute
            found[attribute] = function if hook_name in hookspecs.PER_PLUGIN_HOOKS else _logging_errors(name, hook_name, function)
        return Implementations(name, found)

    def _read_manifest(self, record: PluginRecord) -> None:
        try:
            manifest = self.hook_of(record).manifest()
        except Exception as exc:
            self._fail(record, f"manifest raised {describe_exception(exc)}")
            return
        if manifest is None:
            self._fail(record, "has no manifest hook")
            return
        if not isinstance(manifest, Manifest):
            self._fail(record, "manifest must return kernel.Manifest")
        elif manifest.name != record.name:
            self._fail(record, f"manifest names '{manifest.name}' but the plugin was discovered as '{record.name}'")
        elif not PLUGIN_NAME.fullmatch(manifest.name):
            self._fail(record, "name must be 2-32 lowercase letters, digits or underscores, starting with a letter")
        elif manifest.name in KERNEL_PATHS:
            self._fail(record, f"name '{manifest.name}' is taken by the kernel's own pages")
        elif isinstance(manifest.requires, str) or not all(isinstance(name, str) for name in manifest.requires):
            self._fail(record, "manifest requires must be a tuple of plugin names")
        else:
            record.manifest = manifest

    def _apply_enabled_list(self, settings: PluginsSettings) -> None:
        enabled = settings.enabled if settings.enabled is not None else list(BUNDLED_PLUGINS)
        for name in enabled:
            if name not in self.records:
                raise SettingsError(f"plugins.enabled: unknown plugin '{name}'")
        for record in self.records.values():
            if record.name not in enabled and record.state != FAILED:
                record.state = DISABLED
                record.reason = "not in plugins.enabled"

    def _check_unknown_sections(self, settings: PluginsSettings) -> None:
        for name in settings.section_names():
            if name not in self.records:
                raise SettingsError(f"unknown setting 'plugins.{name}': no such plugin")

    def _check_hook_names(self, record: PluginRecord) -> None:
        # pluggy's check_pending, per plugin so that the reason names the plugin.
        for hook_name in sorted(vars(self.pm.hook)):
            caller = getattr(self.pm.hook, hook_name)
            if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin_name == record.name and not impl.optionalhook:
                    self._fail(record, f"implements unknown hook '{hook_name}' (misspelled?)")
                    return

    def _validate_settings(self, record: PluginRecord, section: dict[str, Any]) -> None:
        assert record.manifest is not None
        record.settings = validate_plugin_settings(record.manifest.settings_model, section, record.name)

    def _collect_features(self, record: PluginRecord, kernel: Kernel, declared: dict[str, str]) -> None:
        features = list(self.hook_of(record).register_features(kernel=kernel) or [])
        own: set[str] = set()
        for feature in features:
            if not isinstance(feature, Feature):
                raise PluginFailure("register_features must yield kernel.Feature objects")
            if feature.key in declared:
                raise PluginFailure(f"feature key '{feature.key}' is already declared by plugin '{declared[feature.key]}'")
            if feature.key in own:
                raise PluginFailure(f"feature key '{feature.key}' is declared twice")
            if not feature.key.startswith(f"{record.name}."):
                raise PluginFailure(f"feature key '{feature.key}' must start with '{record.name}.'")
            if not feature.title or not feature.description:
                raise PluginFailure(f"feature '{feature.key}' needs a title and a description")
            own.add(feature.key)
        for key in own:
            declared[key] = record.name
        record.features = features

    def _collect_routes(self, record: PluginRecord, kernel: Kernel) -> None:
        routes = list(self.hook_of(record).register_routes(kernel=kernel) or [])
        allowed = (f"/{record.name}/", f"/api/{record.name}/")
        for route in routes:
            if not isinstance(route, PluginRoute):
                raise PluginFailure("register_routes must yield Starlette routes (Route, WebSocketRoute or Mount)")
            path = route.path
            if not (path.startswith(allowed) or path in (f"/{record.name}", f"/api/{record.name}")):
                raise PluginFailure(f"route '{path}' is outside its namespace (/{record.name}/ and /api/{record.name}/)")
        record.routes = routes

    def _collect_realtime(self, record: PluginRecord, kernel: Kernel) -> None:
        handlers = self.hook_of(record).register_realtime(kernel=kernel) or {}
        if not isinstance(handlers, Mapping):
            raise PluginFailure("register_realtime must return a mapping of message type to handler")
        kernel.realtime.register(record, dict(handlers))
        record.realtime = dict(handlers)

    def _check_requires(self) -> None:
        changed = True
        while changed:
            changed = False
            for record in self.running():
                assert record.manifest is not None
                for needed in record.manifest.requires:
                    other = self.records.get(needed)
                    if other is None or not other.running:
                        state = "not installed" if other is None else ("not enabled" if other.state == DISABLED else "failed")
                        self._fail(record, f"requires plugin '{needed}', which is {state}")
                        changed = True
                        break

    def _order_by_requires(self) -> None:
        ordered: dict[str, PluginRecord] = {}

        def visit(record: PluginRecord, trail: tuple[str, ...]) -> None:
            if record.name in ordered:
                return
            if record.name in trail:
                self._fail(record, f"circular requires: {' -> '.join(trail + (record.name,))}")
                return
            if record.manifest:
                for needed in record.manifest.requires:
                    if needed in self.records:
                        visit(self.records[needed], trail + (record.name,))
            ordered[record.name] = record

        for record in list(self.records.values()):
            visit(record, ())
        self.records = ordered
        self._check_requires()

    # Run-time switches ----------------------------------------------------------

    def apply_switches(self, switched_off: set[str]) -> list[PluginRecord]:
        """Set every booted plugin on or off as the operator's switches say; returns the plugins that changed.

        A plugin is off when switched off, or when a plugin it requires is off.
        """
        changed = []
        for record in self.records.values():  # requires order: what a plugin needs comes first
            if not record.booted:
                continue
            assert record.manifest is not None
            state, reason = ENABLED, None
            if record.name in switched_off:
                state, reason = OFF, "switched off by an operator"
            else:
                for needed in record.manifest.requires:
                    if not self.records[needed].running:
                        state, reason = OFF, f"requires plugin '{needed}', which is off"
                        break
            if state != record.state:
                record.state = state
                changed.append(record)
            record.reason = reason
        if changed:
            self._states_changed()
        return changed

    # Start-up and shut-down ----------------------------------------------------

    async def start(self, kernel: Kernel) -> None:
        """Run every enabled plugin's start-up hook, in requires order.

        A plugin that fails takes down what requires it before their turn comes.
        """
        for record in list(self.records.values()):
            if record.running:
                await self.start_one(record, kernel)

    async def start_one(self, record: PluginRecord, kernel: Kernel) -> bool:
        """Run one plugin's start-up hook; a failure fails it (and what requires it). True when it started."""
        try:
            await _settled(self.hook_of(record).startup(kernel=kernel))
            record.started = True
            return True
        except Exception as exc:
            logger.error("plugin %s failed to start:\n%s", record.name, traceback.format_exc())
            self._fail(record, f"start-up raised {describe_exception(exc)}")
            self._check_requires()
            return False

    async def stop(self, kernel: Kernel) -> None:
        """Run the shut-down hook of every started plugin, in reverse order."""
        for record in reversed(list(self.records.values())):
            await self.stop_one(record, kernel)

    async def stop_one(self, record: PluginRecord, kernel: Kernel) -> None:
        """Run one started plugin's shut-down hook; errors are logged."""
        if not record.started:
            return
        try:
            await _settled(self.hook_of(record).shutdown(kernel=kernel))
        except Exception:
            logger.exception("plugin %s failed to shut down", record.name)
        record.started = False

    # Calling hooks -----------------------------------------------------------------

    def running(self) -> list[PluginRecord]:
        return [record for record in self.records.values() if record.running]

    def register_kernel_hooks(self, module: ModuleType) -> None:
        """Register the kernel's own implementations (its navigation, its profile actions), guarded like a plugin's."""
        self.pm.register(self._guarded(KERNEL, module), name=KERNEL)

    def _guard(self, record: PluginRecord, check: Any, *args: Any) -> None:
        if not record.running:
            return
        try:
            check(*args)
        except (PluginFailure, ValueError) as exc:
            self._fail(record, str(exc))
        except Exception as exc:
            self._fail(record, f"raised {describe_exception(exc)}")

    def fail(self, record: PluginRecord, reason: str) -> None:
        """Mark ``record`` failed with ``reason``, and whatever requires it too."""
        self._fail(record, reason)
        self._check_requires()

    def _fail(self, record: PluginRecord, reason: str) -> None:
        record.state = FAILED
        record.reason = reason
        self._states_changed()
        logger.error("plugin %s disabled: %s", record.name, reason)




def _logging_errors(plugin: str, hook_name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, except that an exception it raises, or that the awaitable it returns raises, is logged and becomes None."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            answer = function(*args, **kwargs)
        except Exception:
            logger.exception("plugin %s raised in hook %s", plugin, hook_name)
            return None
        return GuardedAnswer(plugin, hook_name, answer) if inspect.isawaitable(answer) else answer

    return guarded


async def _settled(answer: Any) -> Any:
    return await answer if inspect.isawaitable(answer) else answer


class GuardedAnswer:
    """A plugin's awaitable answer to a collecting or event hook: what it raises is logged and becomes None.

    Closing it closes the plugin's coroutine too, so that an answer never
    awaited (its caller was cancelled) does not warn that it never ran.
    """

    def __init__(self, plugin: str, hook_name: str, answer: Awaitable[Any]) -> None:
        self.plugin = plugin
        self.hook_name = hook_name
        self.answer = answer

    def __await__(self) -> Generator[Any, None, Any]:
        try:
            return (yield from self.answer.__await__())
        except Exception:
            logger.exception("plugin %s raised in hook %s", self.plugin, self.hook_name)
            return None

    def close(self) -> None:
        if inspect.iscoroutine(self.answer):
            self.answer.close()
