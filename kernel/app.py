"""The application: a :class:`Kernel` holding one deployment's state, and its Starlette app.

All state hangs off the kernel object, never module globals, so two apps
live side by side in one test process and one deployment runs as many
processes.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread
import jinja2
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from kernel import builtin_hooks, migrate
from kernel.address_book import AddressBook
from kernel.db import DB_THREADS, Database
from kernel.identity import RESERVED_USERNAMES, Identity, User
from kernel.middleware import AuthMiddleware, BodyLimitMiddleware, RequestLogMiddleware
from kernel.plugins import PluginGate, Plugins, describe_exception
from kernel.ratelimit import FailureLimiter
from kernel.routing import KernelRouter
from kernel.settings import Settings, ensure_data_dir, load_settings

logger = logging.getLogger("everything")

KERNEL_DIR = Path(__file__).parent


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
        self.db = Database(settings.database_url, echo=settings.database.echo)
        self.plugins = Plugins()
        self.plugins.register_kernel_hooks(builtin_hooks)
        self.plugins.discover(plugins)
        reserved = RESERVED_USERNAMES | {name.lower() for name in settings.auth.reserved_usernames} | set(self.plugins.records)
        self.identity = Identity(self.db, settings.auth.session_days, frozenset(reserved))
        self.address_book = AddressBook(self.db, self.identity)
        auth = settings.auth
        self.login_failures_by_username = FailureLimiter(auth.login_failures_per_username, auth.login_window_seconds)
        self.login_failures_by_client = FailureLimiter(auth.login_failures_per_client, auth.login_window_seconds)
        # Hashing takes tens of milliseconds of CPU: it gets threads of its own so
        # that a burst of log-ins cannot starve the short database calls.
        self.password_limiter = anyio.CapacityLimiter(2)
        self.plugins.boot(settings.plugins, self)
        self.templates = self._make_templates()
        self.ready = False

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

    def user(self, username: str) -> User | None:
        """The user with this username, in any case, or None."""
        return self.identity.user_by_username(username)

    def user_by_id(self, user_id: int) -> User | None:
        """The user with this id (as plugins store it), or None."""
        return self.identity.user_by_id(user_id)

    def plans_of(self, user: User) -> list[str]:
        """The plans a user holds. Every account is on ``free`` until plans can be granted."""
        return ["free"]

    def is_verified(self, user: User) -> bool:
        """Whether the user carries the verified badge, which only a granted plan can give."""
        return False

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

    def plugin_settings(self, name: str) -> Any:
        """A plugin's validated settings object (its manifest's model), or None."""
        return self.plugins.records[name].settings

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
        auto = self.settings.database.auto_migrate
        if auto or (auto is None and self.settings.is_embedded_database):
            await anyio.to_thread.run_sync(self.upgrade_database)
        await self.plugins.start(self)
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.plugins.stop(self)
        self.db.dispose()

    # Web ----------------------------------------------------------------------------

    def _make_templates(self) -> Jinja2Templates:
        plugin_loaders = {
            record.name: jinja2.FileSystemLoader(record.manifest.templates)
            for record in self.plugins.records.values()
            if record.manifest and record.manifest.templates
        }
        loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(KERNEL_DIR / "templates"), jinja2.PrefixLoader(plugin_loaders)])
        env = jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)
        return Jinja2Templates(env=env)

    def static_routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [Mount("/static/kernel", StaticFiles(directory=KERNEL_DIR / "static"), name="static")]
        for record in self.plugins.records.values():
            if record.manifest and record.manifest.static:
                files = PluginGate(StaticFiles(directory=record.manifest.static), record)
                routes.append(Mount(f"/static/plugins/{record.name}", files))
        return routes

    def plugin_routes(self) -> list[BaseRoute]:
        return [route for record in self.plugins.records.values() for route in record.routes]


def _id(user: User | int) -> int:
    return user if isinstance(user, int) else user.id


def get_kernel(connection: HTTPConnection) -> Kernel:
    """The kernel serving this request or websocket."""
    return connection.scope.get("everything.kernel") or connection.app.state.kernel


def create_app(settings: Settings | None = None, *, plugins: Mapping[str, Any] | None = None) -> Starlette:
    """Build the application for ``settings`` (read from file and environment when None).

    :param plugins: extra plugins by name, as modules or import paths, as if
        they had been installed with an entry point (used by tests and the kit).
    """
    from kernel import api_auth, api_directory, api_operations, pages
    from kernel.error_pages import exception_handlers

    settings = settings or load_settings()
    kernel = Kernel(settings, plugins)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await kernel.start()
        try:
            yield
        finally:
            await kernel.stop()

    routes: list[BaseRoute] = [
        *api_operations.routes,
        *api_auth.routes,
        *api_directory.routes,
        *kernel.plugin_routes(),
        *pages.routes,
        *kernel.static_routes(),
    ]
    middleware = [
        Middleware(RequestLogMiddleware, enabled=settings.log.requests),
        Middleware(BodyLimitMiddleware, max_bytes=settings.server.max_body_bytes),
        Middleware(AuthMiddleware, kernel=kernel),
    ]
    app = Starlette(middleware=middleware, exception_handlers=exception_handlers)
    app.router = KernelRouter(routes, lifespan=lifespan)
    app.state.kernel = kernel
    return app

