"""The plugin contract.

Every hook a plugin may implement is declared here, and this module is its
reference documentation. Implement a hook with :data:`kernel.hookimpl`::

    from kernel import Manifest, hookimpl

    @hookimpl
    def manifest():
        return Manifest(name="polls", title="Polls", version="1.0", description="Polls in posts")

A plugin is a module (or any object) with such functions. Pluggy lets an
implementation take any subset of the arguments listed, by name. The
declarations here are never called (pluggy reads their names, arguments and
options): their bodies raise ``NotImplementedError``.

How the kernel calls them:

- **Per plugin** (:data:`PER_PLUGIN_HOOKS`), where the kernel must know
  whose answer it is, so that a failure disables exactly that plugin, in
  plugin order (a plugin after those it requires).
- **All at once**, every other hook: one pluggy call over the kernel and
  the running plugins, in pluggy's order: the plugin installed last first
  (plugins given or found through their entry point, then the bundled ones
  in reverse), the kernel's own implementations last. An implementation
  that raises, or whose coroutine raises, is logged with its plugin's name
  and left out; the others' answers still count. No hook is ``firstresult``
  unless its docstring says so (``subscribe_url``).

The kernel calls hooks by attribute (``kernel.hook.post_widgets(...)``),
never by a string, so a name not declared here raises at once. A plugin
that implements a hook not declared here is refused at boot: that is how a
misspelled hook name is caught. Hook wrappers (``hookwrapper=True`` or
``wrapper=True``) are refused too: a plugin does not get to intercept the
kernel's or other plugins' answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.routing import BaseRoute

    from kernel.app import Kernel
    from kernel.entitlements import Grant
    from kernel.identity import User
    from kernel.plugin.contract import Command, Feature, Manifest, NavItem, ProfileAction, ProfileSection, TextEntity
    from kernel.realtime.connection import Connection
    from kernel.sandbox_world import SandboxWorld

PROJECT_NAME = "everything"

# Hooks whose answer belongs to one plugin: the kernel calls them plugin by plugin, and a
# plugin that raises in one fails (at shut-down, is logged). Every other hook is collected
# from all running plugins at once, each implementation guarded.
PER_PLUGIN_HOOKS = frozenset(
    {"manifest", "register_features", "register_routes", "register_realtime", "register_commands", "startup", "shutdown", "seed_sandbox"}
)

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def manifest() -> Manifest:
    """Say who the plugin is: name, title, version, description, what it requires.

    Called once per discovered plugin at boot, before anything else of the
    plugin runs, even for plugins the deployment does not enable (so that
    ``everything plugins`` can list them). Every plugin must implement it.
    The name must match the plugin's discovery name. A plugin whose
    ``requires`` names a plugin that is not enabled and started is disabled
    with that reason.

    :returns: a :class:`kernel.Manifest`.
    """
    raise NotImplementedError


@hookspec
def register_features(kernel: Kernel) -> Iterable[Feature]:
    """Declare the features this plugin offers.

    Called once per enabled plugin at boot, before any route is mounted. Each
    feature's key starts with the plugin's name and a dot (``calls.video``); a
    key outside that namespace, or one that another plugin already declared,
    disables this plugin with that reason. The feature's plan is only a
    default: the operator's settings decide.

    :param kernel: the running :class:`kernel.Kernel`.
    :returns: the features, in the order the admin page lists them.
    """
    raise NotImplementedError


@hookspec
def register_routes(kernel: Kernel) -> Iterable[BaseRoute]:
    """Supply the plugin's Starlette routes.

    Called once per enabled plugin at boot. Every route's path must start
    with ``/<name>/`` (pages) or ``/api/<name>/`` (JSON); a route anywhere
    else disables the plugin with that reason. The kernel answers 404 for
    the routes of a plugin that is not running, and turns an exception
    raised by a route into a 500 for that request alone.

    :param kernel: the running :class:`kernel.Kernel`.
    :returns: ``starlette.routing.Route``, ``WebSocketRoute`` or ``Mount`` objects.
    """
    raise NotImplementedError


@hookspec
def profile_sections(request: Request, viewer: User | None, profile: User) -> Iterable[ProfileSection] | Awaitable[Iterable[ProfileSection]]:
    """Contribute blocks to a user's profile page, below the profile card (the feed shows the user's posts).

    Called for every profile page render, for running plugins only, the
    owner's own view included; may be a coroutine function, so a plugin can
    read its tables off the event loop. All results are collected and sorted
    by ``order``. A plugin that raises is logged and left out of the page.

    :param request: the page request.
    :param viewer: who is looking, or None.
    :param profile: whose profile it is.
    :returns: :class:`kernel.ProfileSection` objects.
    """
    raise NotImplementedError


@hookspec
def register_realtime(kernel: Kernel) -> Mapping[str, Callable[..., Any]]:
    """Supply handlers for the plugin's realtime message types.

    Called once per enabled plugin at boot, after :func:`register_routes`.
    Each key is a message type ``<name>.<action>`` (``calls.invite``); a type
    outside the plugin's namespace disables the plugin with that reason.

    A handler is called as ``handler(connection, message)`` for every such
    message on ``/ws``, one message at a time per connection, and may be a
    coroutine function. ``connection.user`` is the sender and
    ``connection.send(dict)`` answers that tab alone; ``kernel.realtime.send_to_user``
    reaches every tab of anyone. A returned dict is sent back as
    ``{"type": "reply", "ref": <the message's id>, ...}``; a raised
    :class:`kernel.ApiError` becomes ``{"type": "error", "ref": ..., "code": ...,
    "message": ...}``; any other exception is logged and answered
    ``internal_error``. Messages for a plugin that is switched off are
    refused with ``plugin_disabled`` before any handler runs.

    :param kernel: the running :class:`kernel.Kernel`.
    :returns: a mapping of message type to handler.
    """
    raise NotImplementedError


@hookspec
def nav_items(request: Request, user: User | None) -> Iterable[NavItem]:
    """Contribute entries to the site navigation.

    Called for every page render, for running plugins only; all results are
    collected and sorted by their ``order``. Keep it cheap: no database
    queries.

    :param request: the page request.
    :param user: the signed-in user, or None.
    :returns: :class:`kernel.NavItem` objects.
    """
    raise NotImplementedError


@hookspec
def profile_actions(request: Request, viewer: User | None, profile: User) -> Iterable[ProfileAction]:
    """Contribute buttons to a user's profile page (Call, Pay, Follow).

    Called for every profile page render, for running plugins only; all
    results are collected and sorted by ``order``. ``viewer`` is None for a
    signed-out visitor; the kernel never asks when the viewer looks at their
    own profile.

    :param request: the page request.
    :param viewer: who is looking, or None.
    :param profile: whose profile it is.
    :returns: :class:`kernel.ProfileAction` objects.
    """
    raise NotImplementedError


@hookspec
def register_commands(kernel: Kernel) -> Iterable[Command]:
    """Supply the plugin's subcommands of the ``everything`` command line.

    Called when an operator runs ``everything <plugin> ...`` with this
    plugin's name as the first word, once, for that plugin only, after the
    kernel has booted (every plugin's routes registered, the database
    migrated when the settings let it). Not called when the plugin is
    disabled or switched off. ``everything <plugin> --help`` lists the
    commands.

    :param kernel: the booted :class:`kernel.Kernel`, not serving.
    :returns: :class:`kernel.Command` objects.
    """
    raise NotImplementedError


@hookspec
def page_assets(request: Request, user: User | None) -> Iterable[str]:
    """Add scripts and stylesheets to every page of the site, not only the plugin's own.

    Called for every page render, for running plugins only; all results are
    collected, in the order of the module docstring. Each result is a local URL path: one ending in
    ``.css`` becomes a ``<link rel="stylesheet">`` in the head, any other a
    deferred ``<script>`` after the kernel's realtime script. Anything not
    starting with ``/`` is ignored. Use it for what must work wherever the
    user is, such as an incoming-call overlay; a plugin's own pages include
    their assets themselves. Keep it cheap: no database queries.

    :param request: the page request.
    :param user: the signed-in user, or None.
    :returns: URL paths, such as ``/static/plugins/calls/calls.js``.
    """
    raise NotImplementedError


@hookspec
def settings_sections(request: Request, user: User) -> Iterable[ProfileSection] | Awaitable[Iterable[ProfileSection]]:
    """Contribute sections to the signed-in user's settings page (``/settings``).

    Called for every render of the settings page, for running plugins only;
    may be a coroutine function. The results are collected and sorted by
    ``order``, then title, and shown after the kernel's own sections, each
    rendering its template with ``context``. A section that saves something
    posts to a route of its plugin, with the page's ``csrf_token``. A plugin
    that raises is logged and left out.

    :param request: the page request.
    :param user: whose settings they are.
    :returns: :class:`kernel.ProfileSection` objects.
    """
    raise NotImplementedError


@hookspec
def realtime_connected(kernel: Kernel, connection: Connection) -> Awaitable[None] | None:
    """React to a signed-in user opening a realtime connection (``/ws``).

    Called for every running plugin after the connection's ``kernel.hello``
    has been queued and before its first message is read, in the process
    that holds the socket. May be a coroutine function; exceptions are
    logged. ``connection.send`` reaches this tab alone, for instance to tell
    it of a call that is ringing.

    :param kernel: the running :class:`kernel.Kernel`.
    :param connection: the new :class:`kernel.Connection`; ``connection.key``
        names it across the deployment.
    """
    raise NotImplementedError


@hookspec
def realtime_disconnected(kernel: Kernel, connection: Connection) -> Awaitable[None] | None:
    """React to a realtime connection closing, whoever closed it.

    Called for every running plugin once per connection, after it has left
    the hub (nothing more can be sent to it), in the process that held it.
    May be a coroutine function; exceptions are logged. A user may still
    have other connections: ``kernel.realtime.is_online(user)`` tells.

    :param kernel: the running :class:`kernel.Kernel`.
    :param connection: the :class:`kernel.Connection` that closed.
    """
    raise NotImplementedError


@hookspec
def text_entities(kernel: Kernel, text: str) -> Iterable[TextEntity]:
    """Recognise spans of a user's text that this plugin knows how to show.

    Called by :func:`kernel.render_text` (the feed calls it for every post
    it renders) for every running plugin; all results are collected. Where
    spans overlap, the one starting first wins, then the longest. The text
    outside the recognised spans is escaped; a span becomes a link to its
    ``href``, or the entity's own ``html``. Keep it fast and free of
    database queries where possible: it runs for every post shown.

    :param kernel: the running :class:`kernel.Kernel`.
    :param text: the text as its author wrote it.
    :returns: :class:`kernel.TextEntity` objects with offsets into ``text``.
    """
    raise NotImplementedError


@hookspec
def post_widgets(request: Request, viewer: User | None, post: Mapping[str, Any]) -> Iterable[ProfileSection] | Awaitable[Iterable[ProfileSection]]:
    """Contribute blocks shown under a post on the post's own page (a price card for a cashtag, a poll).

    Called by the feed plugin for every render of a post's page, for the
    post in focus, for running plugins only; may be a coroutine function,
    so a plugin can read its tables off the event loop. All results are
    collected and sorted by ``order``; each is rendered from the plugin's
    template inside the post. A plugin that raises is logged and left out.

    :param request: the page request.
    :param viewer: who is looking, or None.
    :param post: the post as the feed's API shows it (``id``, ``text``, ``author``, ``html``, ...).
    :returns: :class:`kernel.ProfileSection` objects (``title`` labels the block).
    """
    raise NotImplementedError


@hookspec
def startup(kernel: Kernel) -> Awaitable[None] | None:
    """Start the plugin's background work (connections, tasks).

    Called once per enabled plugin when the application starts, after the
    database is migrated and in plugin order, so a plugin's ``requires``
    have started before it. May be a coroutine function. An exception
    disables the plugin with the exception as its reason; the rest of the
    deployment comes up.

    :param kernel: the running :class:`kernel.Kernel`.
    """
    raise NotImplementedError


@hookspec
def shutdown(kernel: Kernel) -> Awaitable[None] | None:
    """Stop what :func:`startup` started.

    Called once per started plugin when the application stops, in reverse
    plugin order. May be a coroutine function. Exceptions are logged and do
    not stop the other plugins' shut-down.

    :param kernel: the running :class:`kernel.Kernel`.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def subscribe_url(request: Request, user: User | None, plan: str) -> str | None:
    """Say where the upsell page's Subscribe button leads for ``plan``.

    Called when the plans page or an upsell page is rendered, for running
    plugins in the order of the module docstring (a billing plugin an operator
    installs before the bundled payments); ``firstresult``: **the first
    non-None result wins** and the plugins after it are not asked. A billing
    plugin answers with its checkout page; when no plugin answers, the page
    says that subscriptions are not open and an operator can grant plans.

    :param request: the page request.
    :param user: the signed-in user, or None.
    :param plan: the plan's name, such as ``premium``.
    :returns: a URL, or None to let another plugin answer.
    """
    raise NotImplementedError


@hookspec
def entitlements_changed(kernel: Kernel, user: User, plan: str, change: str, grant: Grant) -> Awaitable[None] | None:
    """React to a user gaining or losing a plan.

    Called for every running plugin once per event, in one process of the
    deployment (whichever notices first), when a grant starts (``change`` is
    ``"started"``), reaches its end (``"ended"``) or is revoked
    (``"revoked"``). A grant that starts at once is told within moments; a
    scheduled start or an expiry within ``entitlements.refresh_seconds``.
    The check itself never waits for this hook: an expired grant stops
    counting at its end. May be a coroutine function; exceptions are logged.

    :param kernel: the running :class:`kernel.Kernel`.
    :param user: whose plans changed.
    :param plan: the plan granted or lost.
    :param change: ``"started"``, ``"ended"`` or ``"revoked"``.
    :param grant: the :class:`kernel.Grant` (source, window, reference).
    """
    raise NotImplementedError


@hookspec
def plugin_switched(kernel: Kernel, plugin: str, enabled: bool) -> Awaitable[None] | None:
    """React to a plugin being switched on or off at run time by an operator.

    Called in every process of the deployment when it applies the switch,
    for every plugin running after the change: a plugin switched on has had
    its :func:`startup` and hears of itself too; a plugin switched off gets
    its :func:`shutdown` instead. A plugin that requires another is switched
    with it. May be a coroutine function; exceptions are logged.

    :param kernel: the running :class:`kernel.Kernel`.
    :param plugin: the plugin's name.
    :param enabled: True when it came on, False when it went off.
    """
    raise NotImplementedError


@hookspec
def user_created(kernel: Kernel, user: User) -> Awaitable[None] | None:
    """React to a new account, after its sign-up has been committed.

    Called for every running plugin; may be a coroutine function. An
    exception is logged with the plugin's name and does not undo the
    sign-up.

    :param kernel: the running :class:`kernel.Kernel`.
    :param user: the new user.
    """
    raise NotImplementedError


@hookspec
def seed_sandbox(kernel: Kernel, world: SandboxWorld) -> Awaitable[None] | None:
    """Add this plugin's part to the demo world of ``everything sandbox``.

    Called once per running plugin, only by ``everything sandbox``, in
    plugin order (a plugin's ``requires`` have seeded before it), after the
    server is listening at ``world.url`` and the kernel has seeded the cast:
    every person of ``world.people`` signed up with ``world.password``, their
    plans granted, the operator made, follows and contacts among them. May
    be a coroutine function. Seed through your own services, as a request
    would, so that what is seeded obeys your rules. Start bots with
    ``world.background(name, work)``; they run until the sandbox stops.
    Say what you seeded with ``world.note(line)``. Draw every choice from
    ``world.random``, this plugin's own seeded generator. An exception is
    printed with the plugin's name and logged; the sandbox comes up with
    what the plugin seeded before it, and the next plugin seeds as usual.

    :param kernel: the running :class:`kernel.Kernel`.
    :param world: the :class:`kernel.SandboxWorld`: its cast, URL, clock and seeded random generator.
    """
    raise NotImplementedError
