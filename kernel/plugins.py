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

import copy
import importlib
import importlib.metadata
import inspect
import logging
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy
from pydantic import BaseModel
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from kernel import hookspecs
from kernel.contract import PLUGIN_NAME, Feature, Manifest
from kernel.errors import not_found
from kernel.settings import PluginsSettings, SettingsError, validate_plugin_settings

logger = logging.getLogger("everything.plugins")

BUNDLED_PLUGINS: tuple[str, ...] = ("calls", "feed", "payments", "spaces", "trading")
ENTRY_POINT_GROUP = "everything.plugins"

ENABLED, DISABLED, FAILED, OFF = "enabled", "disabled", "failed", "off"

# The kernel's own hook implementations are registered under this name.
KERNEL = "kernel"

# A plugin's name becomes its URL namespace: these would take the kernel's own paths.
KERNEL_PATHS = frozenset(
    {"admin", "api", "auth", "contacts", "directory", "healthz", "kernel", "login", "logout", "me", "metrics",
     "readyz", "settings", "signup", "static", "users", "ws"}
)


class PluginFailure(Exception):
    """Raised while checking a plugin; the message becomes its reason."""


@dataclass
class PluginRecord:
    """What the kernel knows about one discovered plugin."""

    name: str
    source: str  # "bundled", "entry point" or "given"
    module: Any = None
    manifest: Manifest | None = None
    state: str = ENABLED
    reason: str | None = None
    settings: BaseModel | None = None
    features: list[Feature] = field(default_factory=list)
    routes: list[BaseRoute] = field(default_factory=list)
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


def _route_paths(route: BaseRoute) -> list[str]:
    if isinstance(route, (Route, WebSocketRoute, Mount)):
        return [route.path]
    return [getattr(route, "path", "")]


class PluginGate:
    """Wraps a plugin route's app: 404 while the plugin is not running; errors logged with its name."""

    def __init__(self, app: ASGIApp, record: PluginRecord) -> None:
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.record.running:
            raise not_found()
        try:
            await self.app(scope, receive, send)
        except Exception:
            logger.exception("plugin %s raised while handling %s", self.record.name, scope.get("path"))
            raise


class Plugins:
    """The plugin manager of one application: pluggy plus the records above."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}

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
        except BaseException as exc:  # noqa: BLE001 - a plugin's import may raise anything, even SystemExit
            self._fail(record, f"failed to import: {describe_exception(exc)}")

    # Boot checks -------------------------------------------------------------

    def boot(self, settings: PluginsSettings, kernel: Any) -> None:
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
            if record.state != ENABLED and record.module is not None and self.pm.is_registered(record.module):
                self.pm.unregister(record.module)

    def _register(self, record: PluginRecord) -> None:
        try:
            self.pm.register(record.module, name=record.name)
        except Exception as exc:
            self._fail(record, f"refused by the plugin manager: {exc}")

    def _read_manifest(self, record: PluginRecord) -> None:
        impl = self._impl(record, "manifest")
        if impl is None:
            self._fail(record, "has no manifest hook")
            return
        try:
            manifest = impl.function()
        except Exception as exc:
            self._fail(record, f"manifest raised {describe_exception(exc)}")
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

    def _collect_features(self, record: PluginRecord, kernel: Any, declared: dict[str, str]) -> None:
        features = list(self.call_one(record, "register_features", kernel=kernel) or [])
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

    def _collect_routes(self, record: PluginRecord, kernel: Any) -> None:
        routes = list(self.call_one(record, "register_routes", kernel=kernel) or [])
        allowed = (f"/{record.name}/", f"/api/{record.name}/")
        for route in routes:
            if not isinstance(route, BaseRoute):
                raise PluginFailure("register_routes must yield Starlette routes")
            for path in _route_paths(route):
                if not (path.startswith(allowed) or path in (f"/{record.name}", f"/api/{record.name}")):
                    raise PluginFailure(f"route '{path}' is outside its namespace (/{record.name}/ and /api/{record.name}/)")
        # Plugins often keep their routes in a module-level list, shared by every app in the
        # process: gate copies, so that one app's switch never reaches another's routes.
        gated = []
        for route in routes:
            route = copy.copy(route)
            route.app = PluginGate(route.app, record)  # type: ignore[attr-defined]
            gated.append(route)
        record.routes = gated

    def _collect_realtime(self, record: PluginRecord, kernel: Any) -> None:
        handlers = self.call_one(record, "register_realtime", kernel=kernel) or {}
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
        return changed

    # Start-up and shut-down ----------------------------------------------------

    async def start(self, kernel: Any) -> None:
        """Run every enabled plugin's start-up hook, in requires order.

        A plugin that fails takes down what requires it before their turn comes.
        """
        for record in list(self.records.values()):
            if record.running:
                await self.start_one(record, kernel)

    async def start_one(self, record: PluginRecord, kernel: Any) -> bool:
        """Run one plugin's start-up hook; a failure fails it (and what requires it). True when it started."""
        try:
            await self._await(self.call_one(record, "startup", kernel=kernel))
            record.started = True
            return True
        except Exception as exc:
            logger.error("plugin %s failed to start:\n%s", record.name, traceback.format_exc())
            self._fail(record, f"start-up raised {describe_exception(exc)}")
            self._check_requires()
            return False

    async def stop(self, kernel: Any) -> None:
        """Run the shut-down hook of every started plugin, in reverse order."""
        for record in reversed(list(self.records.values())):
            await self.stop_one(record, kernel)

    async def stop_one(self, record: PluginRecord, kernel: Any) -> None:
        """Run one started plugin's shut-down hook; errors are logged."""
        if not record.started:
            return
        try:
            await self._await(self.call_one(record, "shutdown", kernel=kernel))
        except Exception:
            logger.exception("plugin %s failed to shut down", record.name)
        record.started = False

    # Calling hooks -----------------------------------------------------------------

    def running(self) -> list[PluginRecord]:
        return [record for record in self.records.values() if record.running]

    def _impl(self, record: PluginRecord, hook_name: str) -> Any:
        caller = getattr(self.pm.hook, hook_name, None)
        if caller is None:
            return None
        for impl in caller.get_hookimpls():
            if impl.plugin_name == record.name:
                return impl
        return None

    def call_one(self, record: PluginRecord, hook_name: str, **kwargs: Any) -> Any:
        """Call one plugin's implementation of a hook; None when it has none."""
        impl = self._impl(record, hook_name)
        if impl is None:
            return None
        return impl.function(**{name: kwargs[name] for name in impl.argnames})

    def collect(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a hook on the kernel and every running plugin, flattening iterable results.

        A plugin whose implementation raises is logged by name and skipped:
        one broken navigation item must not take every page down.
        """
        results: list[Any] = []
        names = {KERNEL} | {record.name for record in self.running()}
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            if impl.plugin_name not in names:
                continue
            try:
                value = impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception:
                logger.exception("plugin %s raised in hook %s", impl.plugin_name, hook_name)
                continue
            if value is None:
                continue
            if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping)):
                results.extend(value)
            else:
                results.append(value)
        return results

    async def collect_async(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """:meth:`collect` for hooks whose implementations may be coroutine functions."""
        results: list[Any] = []
        for value in self.collect(hook_name, **kwargs):
            if inspect.isawaitable(value):
                try:
                    value = await value
                except Exception:
                    logger.exception("a plugin raised in hook %s", hook_name)
                    continue
            if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping)):
                results.extend(value)
            elif value is not None:
                results.append(value)
        return results

    async def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an event hook on every running plugin, awaiting coroutines; errors are logged."""
        for record in self.running():
            try:
                await self._await(self.call_one(record, hook_name, **kwargs))
            except Exception:
                logger.exception("plugin %s raised in hook %s", record.name, hook_name)

    @staticmethod
    async def _await(value: Any) -> Any:
        if inspect.isawaitable(value):
            return await value
        return value

    def register_kernel_hooks(self, module: ModuleType) -> None:
        """Register the kernel's own implementations (its navigation, its profile actions)."""
        self.pm.register(module, name=KERNEL)

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
        logger.error("plugin %s disabled: %s", record.name, reason)
