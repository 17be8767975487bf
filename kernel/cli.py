"""The ``everything`` command: serve, check settings, migrate, list plugins."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from kernel.entitlements import GRANT_SOURCES
from kernel.errors import ApiError
from kernel.settings import Settings, SettingsError, check_shared_settings, load_settings

if TYPE_CHECKING:
    from kernel.app import Kernel
    from kernel.identity import User


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    settings = load_settings(args.config, overrides=overrides)
    if getattr(args, "host", None):
        settings.server.host = args.host
    if getattr(args, "port", None) is not None:
        settings.server.port = args.port
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from kernel import logs
    from kernel.app import create_app

    settings = _settings(args)
    check_shared_settings(settings, args.workers)
    logs.configure(settings.log.level)
    app: Any = create_app(settings) if args.workers == 1 else _prepare_workers(args, settings)
    workers = f" in {args.workers} worker processes" if args.workers > 1 else ""
    print(f"Everything is starting on http://{settings.server.host}:{settings.server.port}{workers} (data in {settings.data_dir})", file=sys.stderr)
    options: dict[str, Any] = {
        "host": settings.server.host,
        "port": settings.server.port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
        "ws_max_size": settings.realtime.max_frame_bytes,
    }
    if args.workers > 1:
        return _run_workers(app, args.workers, options)
    uvicorn.run(app, **options)
    return 0


def _run_workers(app: str, workers: int, options: dict[str, Any]) -> int:
    """uvicorn's supervisor over ``workers`` processes sharing one socket; 1 when a worker could not start.

    The supervisor restarts a worker that dies, stops them all on SIGTERM or
    SIGINT, and stops when one fails at start (uvicorn.run would then exit 0).
    """
    import uvicorn
    from uvicorn.server import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(app, factory=True, workers=workers, **options)
    sock = config.bind_socket()
    supervisor = Multiprocess(config, sockets=[sock])
    try:
        supervisor.run()
    finally:
        sock.close()
    failed = [process.pid for process in supervisor.processes if process.exitcode == STARTUP_FAILURE]
    if failed:
        print(f"error: worker process {failed[0]} failed to start; its log above says why", file=sys.stderr)
        return 1
    return 0


def _prepare_workers(args: argparse.Namespace, settings: Settings) -> str:
    """Set up the data folder and migrate once, here, for ``--workers``; the import string of the workers' app.

    The workers read their settings as this process did: the command line's
    choices go to them through the environment. They never migrate, since
    several at once would race over the same schema.
    """
    from kernel.app import Kernel

    kernel = Kernel(settings)
    try:
        if settings.migrates_by_itself:
            failures = kernel.upgrade_database()
            if failures:
                raise SettingsError(f"{failures[0]}; fix it (or take the plugin out of plugins.enabled) before starting workers")
    finally:
        # What a kernel that never started holds: no Redis (the bus connects, and lends the limits its
        # client, only when it starts), but the database's pool and the job locks' connection.
        kernel.job_locks.close()
        kernel.db.dispose()
    if args.config:
        os.environ["EVERYTHING_CONFIG"] = str(Path(args.config).resolve())
    overrides = {
        "EVERYTHING_DATA_DIR": str(settings.data_dir.resolve()),
        "EVERYTHING_SERVER__HOST": settings.server.host,
        "EVERYTHING_SERVER__PORT": str(settings.server.port),
        "EVERYTHING_DATABASE__AUTO_MIGRATE": "false",
    }
    os.environ.update(overrides)
    return "kernel.cli:worker_app"


def worker_app() -> Any:
    """The application of one ``serve --workers`` process (uvicorn calls it in each), settings from the environment."""
    from kernel import logs
    from kernel.app import create_app

    settings = load_settings()
    logs.configure(settings.log.level)
    return create_app(settings)


def cmd_config_check(args: argparse.Namespace) -> int:
    from kernel.app import Kernel

    settings = _settings(args)
    check_shared_settings(settings)
    # Booting the plugin manager validates the plugin sections and plugins.enabled too.
    kernel = Kernel(settings, inspect_only=True)
    failed = [record for record in kernel.plugins.records.values() if record.state == "failed"]
    print(json.dumps(settings.redacted(), indent=2))
    for record in failed:
        print(f"warning: plugin {record.name} failed: {record.reason}", file=sys.stderr)
    print("settings are valid", file=sys.stderr)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from kernel.app import Kernel

    kernel = Kernel(_settings(args))
    failures = kernel.upgrade_database()
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    if failures:
        return 1
    print("database is up to date", file=sys.stderr)
    return 0


def _operator_kernel(args: argparse.Namespace, inspect_only: bool = False, plugins: Mapping[str, Any] | None = None) -> Kernel:
    """A kernel for an operator command: not serving, its database migrated when the settings let it."""
    from kernel.app import Kernel

    kernel = Kernel(_settings(args), plugins, inspect_only=inspect_only)
    if not inspect_only and kernel.settings.migrates_by_itself:
        kernel.upgrade_database()
    return kernel


def _actor() -> str:
    """Who acts from the command line, as the audit log names them."""
    try:
        return f"cli ({getpass.getuser()})"
    except (KeyError, OSError):
        return "cli"


def _tell_servers(kernel: Kernel, message: dict[str, Any]) -> str:
    """Tell the running servers of a change this command made; how soon they follow, in words for its output."""
    import asyncio

    from kernel.realtime.bus import publish_control_from_outside

    if asyncio.run(publish_control_from_outside(kernel.settings, message)):
        return "running servers follow at once"
    return f"running servers follow within {kernel.settings.entitlements.refresh_seconds:g} s"


def _user(kernel: Kernel, username: str) -> User:
    user = kernel.user(username.removeprefix("@"))
    if user is None:
        raise ApiError(404, "not_found", f"no user @{username.removeprefix('@')}")
    return user


def cmd_plugins(args: argparse.Namespace) -> int:
    from kernel import switches

    kernel = _operator_kernel(args, inspect_only=True)
    try:
        # Show the operator's run-time switches too, when the database has them.
        kernel.take_switches(switches.read_state(kernel.db))
    except SQLAlchemyError:
        pass
    records = [record.as_json() for record in kernel.plugins.records.values()]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    width = max([len(record["name"]) for record in records] + [4])
    print(f"{'NAME':<{width}}  {'VERSION':<9}  {'STATE':<8}  REASON")
    for record in records:
        print(f"{record['name']:<{width}}  {record['version'] or '-':<9}  {record['state']:<8}  {record['reason'] or ''}")
    return 0


def cmd_plugins_switch(args: argparse.Namespace) -> int:
    from kernel import switches

    kernel = _operator_kernel(args)
    kernel.booted_plugin(args.name)
    enabled = args.action == "enable"
    changed = switches.set_plugin(kernel.db, args.name, enabled, _actor())
    state = "on" if enabled else "off"
    if not changed:
        print(f"plugin {args.name} is already {state}", file=sys.stderr)
        return 0
    print(f"plugin {args.name} is now {state}; {_tell_servers(kernel, {'type': 'kernel.switches'})}", file=sys.stderr)
    return 0


def cmd_plugins_check(args: argparse.Namespace) -> int:
    from kernel.app import Kernel
    from kernel.plugin import check as plugin_check

    try:
        report = plugin_check.check(args.target, Kernel)
    except Exception as exc:  # a plugin that cannot even be imported is a breach, said plainly
        print(f"plugin {args.target}:\n  FAIL  cannot be loaded: {exc}\n1 breach(es)")
        return 1
    print(report.text())
    return 1 if report.breaches else 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from sandbox import deployment

    return deployment.run(args.host, args.port, config=args.config, keep=args.keep, password=args.password, seed=args.seed)


def cmd_grant(args: argparse.Namespace) -> int:
    kernel = _operator_kernel(args)
    user = _user(kernel, args.user)
    grant = kernel.entitlements.grant(user, args.plan, source=args.source, days=args.days, reference=args.reference or "", actor=_actor())
    until = f" until {grant.ends_at:%Y-%m-%d %H:%M} UTC" if grant.ends_at else ""
    followed = _tell_servers(kernel, {"type": "kernel.grants", "user_id": user.id})
    print(f"granted {grant.plan} to @{user.username}{until} (grant #{grant.id}); {followed}", file=sys.stderr)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    kernel = _operator_kernel(args)
    user = _user(kernel, args.user)
    revoked = kernel.entitlements.revoke(user, args.plan, actor=_actor())
    if not revoked:
        print(f"@{user.username} holds no current grant of {args.plan}", file=sys.stderr)
        return 1
    followed = _tell_servers(kernel, {"type": "kernel.grants", "user_id": user.id})
    print(f"revoked {args.plan} from @{user.username} ({len(revoked)} grant{'s' if len(revoked) > 1 else ''}); {followed}", file=sys.stderr)
    return 0


def cmd_users_set_admin(args: argparse.Namespace) -> int:
    from kernel import admin

    kernel = _operator_kernel(args)
    user = _user(kernel, args.user)
    admin.set_admin(kernel, user, not args.remove, _actor())
    print(f"@{user.username} is {'no longer' if args.remove else 'now'} an operator", file=sys.stderr)
    return 0


def cmd_users_show(args: argparse.Namespace) -> int:
    kernel = _operator_kernel(args)
    user = _user(kernel, args.user)
    body = {
        **kernel.user_json(user),
        "is_admin": user.is_admin,
        "plans": kernel.plans_of(user),
        "grants": [grant.as_json() for grant in kernel.entitlements.grants_of(user.id)],
    }
    print(json.dumps(body, indent=2))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from kernel import admin, switches

    kernel = _operator_kernel(args)
    kernel.take_switches(switches.read_state(kernel.db))
    if args.action == "rollout":
        if args.key not in kernel.entitlements.catalog.features:
            raise ApiError(404, "not_found", f"no feature '{args.key}'")
        switches.set_rollout(kernel.db, args.key, args.percent, _actor())
        print(f"{args.key} is rolled out to {args.percent}% of users; {_tell_servers(kernel, {'type': 'kernel.switches'})}", file=sys.stderr)
        return 0
    for key in kernel.entitlements.catalog.features:
        feature = admin.feature_json(kernel, key)
        print(f"{key:<28} {feature['plan']:<10} {feature['rollout_percent']:>3}%  {feature['title']}")
    return 0


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number (0-65535)")
    return port


def worker_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of workers (1-256)")
    return value


def percent(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"'{text}' is not a percentage (0-100)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="everything", description="Run and operate an Everything deployment.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="settings file (default: $EVERYTHING_CONFIG, else ./everything.toml)")
    common.add_argument("--data-dir", help="data folder (default: ./everything-data)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[common], help="run the web server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=port_number)
    serve.add_argument(
        "--workers", type=worker_count, default=1, help="server processes on this host (default: 1); more than 1 needs a Redis bus (docs/scale-out.md)"
    )
    serve.set_defaults(handler=cmd_serve)

    sandbox = commands.add_parser(
        "sandbox", help="run a throwaway deployment with a seeded demo world and bots; print the logins"
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    sandbox.add_argument("--port", type=port_number, default=8000, help="port (default: 8000; 0 picks a free one)")
    sandbox.add_argument("--config", help="a settings file for plugin sections; the database and bus stay throwaway")
    sandbox.add_argument("--keep", action="store_true", help="keep the data folder when the sandbox stops")
    sandbox.add_argument("--password", help="every login's password (default: a new random one)")
    sandbox.add_argument("--seed", type=int, default=1, help="the demo world's random seed (default: 1)")
    sandbox.set_defaults(handler=cmd_sandbox)

    config = commands.add_parser("config", help="settings").add_subparsers(dest="action", required=True)
    check = config.add_parser("check", parents=[common], help="validate and print the effective settings, secrets redacted")
    check.set_defaults(handler=cmd_config_check)

    db = commands.add_parser("db", help="database").add_subparsers(dest="action", required=True)
    upgrade = db.add_parser("upgrade", parents=[common], help="apply every pending migration")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    plugins = commands.add_parser("plugins", parents=[common], help="list discovered plugins with state and reason; switch them")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(handler=cmd_plugins)
    plugin_actions = plugins.add_subparsers(dest="action")
    for action in ("enable", "disable"):
        switch = plugin_actions.add_parser(action, parents=[common], help=f"{action} a plugin at run time, for every process")
        switch.add_argument("name")
        switch.set_defaults(handler=cmd_plugins_switch)
    conformance = plugin_actions.add_parser("check", help="check that a plugin keeps the contract; exit 1 on any breach")
    conformance.add_argument("target", metavar="NAME|PATH", help="an installed plugin's name, or the path of its module or package")
    conformance.set_defaults(handler=cmd_plugins_check)

    grant = commands.add_parser("grant", parents=[common], help="grant a plan to a user")
    grant.add_argument("user")
    grant.add_argument("plan")
    grant.add_argument("--days", type=float, help="how long; forever when left out")
    grant.add_argument("--source", default="operator", choices=GRANT_SOURCES)
    grant.add_argument("--reference", help="an order number, a ticket, a note")
    grant.set_defaults(handler=cmd_grant)

    revoke = commands.add_parser("revoke", parents=[common], help="end a user's current grants of a plan now")
    revoke.add_argument("user")
    revoke.add_argument("plan")
    revoke.set_defaults(handler=cmd_revoke)

    users = commands.add_parser("users", help="accounts").add_subparsers(dest="action", required=True)
    set_admin = users.add_parser("set-admin", parents=[common], help="make a user an operator (or --remove)")
    set_admin.add_argument("user")
    set_admin.add_argument("--remove", action="store_true", help="take the operator rights away instead")
    set_admin.set_defaults(handler=cmd_users_set_admin)
    show = users.add_parser("show", parents=[common], help="a user's plans and grants, as JSON")
    show.add_argument("user")
    show.set_defaults(handler=cmd_users_show)

    features = commands.add_parser("features", parents=[common], help="list features with plan and rollout")
    features.set_defaults(handler=cmd_features)
    feature_actions = features.add_subparsers(dest="action")
    rollout = feature_actions.add_parser("rollout", parents=[common], help="roll a feature out to a percentage of users")
    rollout.add_argument("key")
    rollout.add_argument("percent", type=percent)
    # Any other first word names a plugin whose commands run_plugin_command finds.
    parser.set_defaults(builtin_commands=frozenset(commands.choices))
    return parser


def run_plugin_command(argv: list[str], plugins: Mapping[str, Any] | None = None) -> int:
    """``everything <plugin> <command> ...``: a command that a running plugin supplies (``register_commands``).

    ``plugins`` adds modules to discover by name, as ``create_app`` takes them (tests use it).
    """
    from kernel.plugin.contract import Command

    name = argv[0]
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="settings file (default: $EVERYTHING_CONFIG, else ./everything.toml)")
    common.add_argument("--data-dir", help="data folder (default: ./everything-data)")
    known, _ = common.parse_known_args(argv[1:])
    kernel = _operator_kernel(known, plugins=plugins)
    record = kernel.plugins.records.get(name)
    if record is None or not record.running:
        print(f"error: '{name}' is neither a command nor a running plugin; see everything --help", file=sys.stderr)
        return 2
    commands = [item for item in kernel.plugins.hook_of(record).register_commands(kernel=kernel) or [] if isinstance(item, Command)]
    parser = argparse.ArgumentParser(prog=f"everything {name}", description=f"Commands of the {record.title} plugin.")
    actions = parser.add_subparsers(dest="action", required=True)
    for command in commands:
        sub = actions.add_parser(command.name, parents=[common], help=command.help)
        if command.arguments is not None:
            command.arguments(sub)
        sub.set_defaults(run=command.run)
    args = parser.parse_args(argv[1:])
    return int(args.run(kernel, args))


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if words and not words[0].startswith("-") and words[0] not in parser.get_default("builtin_commands"):
        return _reporting_errors(lambda: run_plugin_command(words))
    args = parser.parse_args(words)
    return _reporting_errors(lambda: args.handler(args))


def _reporting_errors(run: Any) -> int:
    """Run a command; the errors an operator can act on become one line and an exit status."""
    try:
        return run()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        # The driver's message is several lines long; its first line says what happened.
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"error: database: {detail}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
