"""The composition root: a :class:`Kernel` holding one deployment's state and services, and its Starlette app.

Only this module builds the kernel's parts and wires them together; the rest
of the kernel names :class:`Kernel` under ``TYPE_CHECKING`` and is handed the
object (docs/architecture.md).

All state hangs off the kernel object, never module globals, so two apps
live side by side in one test process and one deployment runs as many
processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, WebSocketRoute

from kernel import switches
from kernel.accounts import Accounts
from kernel.address_book import AddressBook
from kernel.directory import Directory
from kernel.entitlements import Entitlements, Grant
from kernel.errors import ApiError, not_found
from kernel.identity import RESERVED_USERNAMES, Identity, User
from kernel.media_storage import MediaStorage, MediaStorages
from kernel.notifications import Notifications
from kernel.passwords import NO_PASSWORD
from kernel.plugin import builtin_hooks
from kernel.plugin.answers import settle
from kernel.plugin.manager import Hooks, PluginRecord, Plugins, describe_exception
from kernel.ratelimit import Limits
from kernel.realtime import revocation
from kernel.realtime.bus import RedisBus, make_bus
from kernel.realtime.endpoint import websocket_endpoint
from kernel.realtime.hub import Hub
from kernel.settings import Settings, ensure_data_dir, load_settings
from kernel.storage import migrate
from kernel.storage.database import DB_THREADS, Database
from kernel.storage.job_locks import JobLocks
from kernel.web import api, pages
from kernel.web.error_pages import exception_handlers
from kernel.web.middleware import AuthMiddleware, BodyLimitMiddleware, RequestLogMiddleware
from kernel.web.routing import KernelRouter, plugin_routes
from kernel.web.shell import make_templates, static_routes

logger = logging.getLogger("everything")


class Kernel:
    """One deployment: settings, database, plugins and the kernel's services.

    Plugins receive it in their hooks and reach it from a request with
    :func:`kernel.get_kernel`.
    """

    def __init__(self, settings: Settings, plugins: Mapping[str, Any] | None = None, *, inspect_only: bool = False) -> None:
        """:param inspect_only: for commands that only look (``plugins``, ``config check``):
        create no data folder and no secret key."""
        if inspect_only:
            if settings.secret_key is None:
                settings = settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(32))})
        else:
            ensure_data_dir(settings)
        self.settings = settings
        self.secret_key = settings.secret()
        self.db = Database(
            settings.database_url, echo=settings.database.echo, pool_size=settings.database.pool_size, max_overflow=settings.database.max_overflow
        )
        # Periodic jobs take these, so that each runs in one process of the deployment at a time.
        self.job_locks = JobLocks(settings.database_url)
        self.plugins = Plugins()
        self.plugins.register_kernel_hooks(builtin_hooks)
        self.plugins.discover(plugins)
        reserved = RESERVED_USERNAMES | {name.lower() for name in settings.auth.reserved_usernames} | set(self.plugins.records)
        self.identity = Identity(self.db, settings.auth.session_days, frozenset(reserved))
        self.address_book = AddressBook(self.db, self.identity)
        # The bus before the accounts: the log-in and sign-up limits count in its Redis, when it is one
        # (under the deployment's prefix, falling back with its health), and the accounts take their limiters from them.
        bus = make_bus(settings.bus, self.db)
        self.limits = Limits(bus if isinstance(bus, RedisBus) else None)
        self.accounts = Accounts(self)
        self.directory = Directory(self)
        # Feed media and Spaces recordings: one backend for the deployment ([media] storage).
        self.media = MediaStorages(settings, self.db)
        # Each plugin's own objects (its services, its caches), by plugin name, behind
        # kernel.PluginState: state hangs off the kernel, never a module global.
        self._plugin_state: dict[str, Any] = {}
        # Paths that take bodies over server.max_body_bytes (uploads), and their own limits.
        self.body_limits: dict[str, int] = {}
        self.realtime = Hub(self, bus)
        # Revocations and account changes reach every process at once (kernel/realtime/revocation.py).
        self.identity.announce = self._announcer = revocation.Announcer(self)
        self.entitlements = Entitlements(self)
        self.notifications = Notifications(self)
        self.plugins.boot(settings.plugins, self)
        self.entitlements.build_catalog([record for record in self.plugins.records.values() if record.booted], self.plugins.fail)
        self.templates = make_templates([record for record in self.plugins.records.values() if record.manifest])
        self.ready = False
        self._maintenance: asyncio.Task[None] | None = None
        self._switch_lock = asyncio.Lock()

    # Services plugins use -------------------------------------------------------

    def is_blocked(self, a: User | int, b: User | int) -> bool:
        """True when either user has blocked the other."""
        return self.address_book.is_blocked(_id(a), _id(b))

    def follows(self, follower: User | int, followee: User | int) -> bool:
        """True when ``follower`` follows ``followee``."""
        return self.address_book.follows(_id(follower), _id(followee))

    def in_contacts(self, owner: User | int, other: User | int) -> bool:
        """True when ``other`` is in ``owner``'s address book."""
        return self.address_book.in_contacts(_id(owner), _id(other))

    def following_ids(self, user: User | int) -> list[int]:
        """The ids of everyone ``user`` follows (a timeline's authors)."""
        return self.address_book.following_ids(_id(user))

    def following_query(self, user: User | int) -> Any:
        """A SELECT of the ids ``user`` follows and of ``user``: a timeline's authors, to use inside a plugin's query.

        Cheaper than sending a thousand ids as parameters, on SQLite; PostgreSQL
        plans a long array parameter better (see plugins/feed/posts.py).
        """
        return self.address_book.following_query(_id(user))

    def follower_ids(self, user: User | int) -> list[int]:
        """The ids of everyone who follows ``user`` (whom a new post of theirs concerns)."""
        return self.address_book.follower_ids(_id(user))

    def blocked_ids(self, user: User | int) -> set[int]:
        """The ids of everyone ``user`` blocked or was blocked by: their content is hidden both ways."""
        return self.address_book.blocked_either_way(_id(user))

    def user(self, username: str) -> User | None:
        """The user with this username, in any case, or None."""
        return self.identity.user_by_username(username)

    def user_by_id(self, user_id: int) -> User | None:
        """The user with this id (as plugins store it), or None."""
        return self.identity.user_by_id(user_id)

    def plans_of(self, user: User) -> list[str]:
        """The plans a user holds now, ``free`` included."""
        return sorted(self.entitlements.held_plans(user.id))

    def is_verified(self, user: User) -> bool:
        """Whether the user carries the verified badge: the feature ``kernel.verified``, which a plan gives."""
        return self.entitlements.is_verified(user)

    async def prepare_users(self, people: list[User]) -> None:
        """Load the plans of everyone about to be shown in one query, off the event loop (their badges need them)."""
        await anyio.to_thread.run_sync(self.entitlements.warm, [person.id for person in people])

    def user_json(self, user: User) -> dict[str, Any]:
        """The user object every API answer uses."""
        return {
            "username": user.username,
            "display_name": user.display_name,
            "bio": user.bio,
            "verified": self.is_verified(user),
            "followers": user.followers,
            "following": user.following,
        }

    def allow_large_bodies(self, path: str, max_bytes: int) -> None:
        """Let requests to exactly ``path`` (an upload route) carry up to ``max_bytes``; call it from ``register_routes``."""
        self.body_limits[path] = max_bytes

    def media_storage(self, namespace: str, local_folder: Path | None = None) -> MediaStorage:
        """Where plugin ``namespace`` keeps its files, on the backend ``[media] storage`` chose; its methods block.

        On the local backend the files are under ``local_folder`` (default ``<data_dir>/media/<namespace>``);
        on the others that folder is not used and every host sees the same files.
        """
        return self.media.for_plugin(namespace, local_folder)

    def plugin_settings(self, name: str) -> Any:
        """A plugin's validated settings object (its manifest's model), or None."""
        return self.plugins.records[name].settings

    def plugin_status(self, name: str) -> str | None:
        """A plugin's state: ``enabled`` (running), ``off`` (switched off), ``disabled`` or ``failed``; None when not installed.

        A plugin that cooperates with another asks before using it; a plugin's
        ``shutdown`` tells an operator's switch (``off``) from the server stopping.
        """
        record = self.plugins.records.get(name)
        return record.state if record is not None else None

    @property
    def hook(self) -> Hooks:
        """The contract's hooks over the kernel and every running plugin, for a plugin that offers a hook point to others.

        ``await collect_async(kernel.hook.post_widgets(request=..., viewer=..., post=...))``
        is how the feed asks every plugin for widgets under a post.
        """
        return self.plugins.hook

    def bot_account(self, username: str, display_name: str) -> User:
        """The account of a bot the deployment runs itself (the calls' echo), made on first use.

        It has no password, so nobody can log in as it, and its username may be
        a reserved one. Several processes may ask at once: one makes it and every
        one gets it. Blocking: call it off the event loop.
        """
        found = self.identity.user_by_username(username)
        if found is not None:
            return found
        try:
            return self.identity.create_user(username, NO_PASSWORD, display_name)
        except ApiError:  # another process made it first
            found = self.identity.user_by_username(username)
            if found is None:
                raise
            return found

    # Lifecycle --------------------------------------------------------------------

    def migration_folders(self) -> list[Path]:
        """The migration folder of every plugin whose manifest names one, running or not."""
        return [record.manifest.migrations for record in self.plugins.records.values() if record.manifest and record.manifest.migrations]

    def upgrade_database(self) -> list[str]:
        """Migrate the kernel's branch, then each running plugin's.

        A plugin whose migration fails is disabled with that reason and the
        rest go on; the kernel's own failure stops everything. Returns the
        reasons of the plugins that failed.
        """
        folders = self.migration_folders()
        migrate.upgrade(self.db, folders, ["kernel"])
        failures = []
        for record in self.plugins.running():
            if record.manifest and record.manifest.migrations:
                try:
                    migrate.upgrade(self.db, folders, [record.name])
                except Exception as exc:
                    self.plugins.fail(record, f"migration failed: {describe_exception(exc)}")
                    failures.append(f"plugin {record.name}: {record.reason}")
        return failures

    async def start(self) -> None:
        # Few threads: with anyio's default of 40 they queue on the GIL, and every
        # short database call pays for the hand-overs (see bench/directory.py).
        anyio.to_thread.current_default_thread_limiter().total_tokens = DB_THREADS
        if self.settings.migrates_by_itself:
            await anyio.to_thread.run_sync(self.upgrade_database)
        # Plugins switched off before the restart start off, and are not told so.
        self.take_switches(await anyio.to_thread.run_sync(switches.read_state, self.db))
        self.realtime.control_listeners.append(self._on_control)
        self.realtime.control_listeners.append(revocation.on_control(self))
        await self.realtime.start()
        self._announcer.serve_on(asyncio.get_running_loop())
        await self.plugins.start(self)
        self._maintenance = asyncio.create_task(self._maintain(), name="everything-maintenance")
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        self._announcer.serve_on(None)
        # The sockets first, while the plugins and the bus still run: they close with 1012, and what their
        # closing starts (the calls' grace deadlines, presence leaving the bus) is done and published.
        await self.realtime.drain()
        # Then the plugins: their periodic jobs stop, and what they end at stop (the echo's calls) still reaches the bus.
        await self.plugins.stop(self)
        await self.realtime.stop()
        # In a thread: a periodic job's lock check may hold the locks' guard (and their connection) for seconds.
        await anyio.to_thread.run_sync(self.job_locks.close)
        self.db.dispose()

    async def _maintain(self) -> None:
        """Every few seconds: pick up switches changed elsewhere, and tell plugins of grants that started or ended."""
        while True:
            await asyncio.sleep(self.settings.entitlements.refresh_seconds)
            try:
                await self.refresh_switches()
                await self.announce_grant_events()
            except Exception:
                logger.exception("periodic refresh failed; retrying")

    def _on_control(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "kernel.switches":
            self.realtime.spawn(self.refresh_switches())
        elif kind == "kernel.grants" and isinstance(message.get("user_id"), int):
            self.entitlements.forget(message["user_id"])

    # Operator actions ---------------------------------------------------------------

    def take_switches(self, state: switches.SwitchState) -> list[PluginRecord]:
        """Adopt stored switches: the rollouts, and each plugin's state; returns the plugins whose state changed."""
        self.entitlements.rollouts = dict(state.rollouts)
        return self.plugins.apply_switches(set(state.plugins_off))

    async def refresh_switches(self) -> None:
        """Read the stored switches and apply them: start or stop the plugins whose switch changed."""
        async with self._switch_lock:
            changed = self.take_switches(await anyio.to_thread.run_sync(switches.read_state, self.db))
            # What requires a plugin stops before it, and starts after it.
            for record in reversed([record for record in changed if not record.running]):
                await self.plugins.stop_one(record, self)
                logger.info("plugin %s is now off", record.name)
                await settle(self.plugins.hook.plugin_switched(kernel=self, plugin=record.name, enabled=False))
            for record in [record for record in changed if record.running]:
                if await self.plugins.start_one(record, self):
                    logger.info("plugin %s is now on", record.name)
                    await settle(self.plugins.hook.plugin_switched(kernel=self, plugin=record.name, enabled=True))

    async def switch_plugin(self, name: str, enabled: bool, actor: User | str) -> PluginRecord:
        """Switch a plugin on or off for the whole deployment, persisted and audited; effective everywhere within seconds."""
        record = self.booted_plugin(name)
        await anyio.to_thread.run_sync(switches.set_plugin, self.db, name, enabled, actor)
        await self.refresh_switches()
        await self.realtime.publish_control({"type": "kernel.switches"})
        return record

    async def set_rollout(self, feature: str, percent: int, actor: User | str) -> None:
        """Roll a feature out to ``percent`` of users, chosen by a stable hash of feature and user."""
        if feature not in self.entitlements.catalog.features:
            raise not_found(f"There is no feature '{feature}'.")
        await anyio.to_thread.run_sync(switches.set_rollout, self.db, feature, percent, actor)
        await self.refresh_switches()
        await self.realtime.publish_control({"type": "kernel.switches"})

    def booted_plugin(self, name: str) -> PluginRecord:
        """The plugin that may be switched: 404 when unknown, 409 when it is not in ``plugins.enabled`` or failed."""
        record = self.plugins.records.get(name)
        if record is None:
            raise not_found(f"There is no plugin '{name}'.")
        if not record.booted:
            why = "is not in plugins.enabled; add it to the settings and restart" if record.state == "disabled" else f"failed: {record.reason}"
            raise ApiError(409, "plugin_not_switchable", f"Plugin '{name}' {why}.")
        return record

    async def grant(self, user: User, plan: str, **options: Any) -> Grant:
        """Grant a plan (see :meth:`Entitlements.grant` for the options); every process and plugin hears of it."""
        grant = await anyio.to_thread.run_sync(lambda: self.entitlements.grant(user, plan, **options))
        await self.grants_changed(user.id)
        return grant

    async def revoke(self, user: User, plan: str, **options: Any) -> list[Grant]:
        """Revoke a plan's current grants (see :meth:`Entitlements.revoke`); every process and plugin hears of it."""
        revoked = await anyio.to_thread.run_sync(lambda: self.entitlements.revoke(user, plan, **options))
        await self.grants_changed(user.id)
        return revoked

    async def grants_changed(self, user_id: int) -> None:
        """After a grant or revocation: every process forgets the user's cached plans, and plugins hear of it."""
        self.entitlements.forget(user_id)
        await self.realtime.publish_control({"type": "kernel.grants", "user_id": user_id})
        await self.announce_grant_events()

    async def announce_grant_events(self) -> None:
        """Call ``entitlements_changed`` for each grant that started, ended or was revoked since the last look."""
        events: list[tuple[Grant, str]] = await anyio.to_thread.run_sync(self.entitlements.claim_due_events)
        for grant, change in events:
            self.entitlements.forget(grant.user_id)
            user = await anyio.to_thread.run_sync(self.identity.user_by_id, grant.user_id)
            if user is not None:
                await settle(self.plugins.hook.entitlements_changed(kernel=self, user=user, plan=grant.plan, change=change, grant=grant))


def _id(user: User | int) -> int:
    return user if isinstance(user, int) else user.id


def create_app(settings: Settings | None = None, *, plugins: Mapping[str, Any] | None = None) -> Starlette:
    """Build the application for ``settings`` (read from file and environment when None).

    :param plugins: extra plugins by name, as modules or import paths, as if
        they had been installed with an entry point (used by tests and the kit).
    """
    settings = settings or load_settings()
    kernel = Kernel(settings, plugins)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await kernel.start()
        try:
            yield
        finally:
            await kernel.stop()

    records = list(kernel.plugins.records.values())
    routes: list[BaseRoute] = [
        *api.routes,
        WebSocketRoute("/ws", websocket_endpoint),
        *plugin_routes(records),
        *pages.routes,
        *static_routes(records),
    ]
    middleware = [
        Middleware(RequestLogMiddleware, enabled=settings.log.requests),
        Middleware(BodyLimitMiddleware, max_bytes=settings.server.max_body_bytes, larger=kernel.body_limits),
        Middleware(AuthMiddleware, kernel=kernel),
    ]
    app = Starlette(middleware=middleware, exception_handlers=exception_handlers)
    app.router = KernelRouter(routes, lifespan=lifespan)
    app.state.kernel = kernel
    return app
