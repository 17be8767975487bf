"""The ``everything`` command: serve, check settings, migrate, list plugins."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from kernel.settings import Settings, SettingsError, load_settings


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
    logs.configure(settings.log.level)
    app = create_app(settings)
    print(f"Everything is starting on http://{settings.server.host}:{settings.server.port} (data in {settings.data_dir})", file=sys.stderr)
    uvicorn.run(app, host=settings.server.host, port=settings.server.port, log_config=None, access_log=False, proxy_headers=True)
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from kernel.app import Kernel

    settings = _settings(args)
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


def cmd_plugins(args: argparse.Namespace) -> int:
    from kernel.app import Kernel

    kernel = Kernel(_settings(args), inspect_only=True)
    records = [record.as_json() for record in kernel.plugins.records.values()]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    width = max([len(record["name"]) for record in records] + [4])
    print(f"{'NAME':<{width}}  {'VERSION':<9}  {'STATE':<8}  REASON")
    for record in records:
        print(f"{record['name']:<{width}}  {record['version'] or '-':<9}  {record['state']:<8}  {record['reason'] or ''}")
    return 0


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number (0-65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="everything", description="Run and operate an Everything deployment.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="settings file (default: $EVERYTHING_CONFIG, else ./everything.toml)")
    common.add_argument("--data-dir", help="data folder (default: ./everything-data)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[common], help="run the web server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=port_number)
    serve.set_defaults(handler=cmd_serve)

    config = commands.add_parser("config", help="settings").add_subparsers(dest="action", required=True)
    check = config.add_parser("check", parents=[common], help="validate and print the effective settings, secrets redacted")
    check.set_defaults(handler=cmd_config_check)

    db = commands.add_parser("db", help="database").add_subparsers(dest="action", required=True)
    upgrade = db.add_parser("upgrade", parents=[common], help="apply every pending migration")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    plugins = commands.add_parser("plugins", parents=[common], help="list discovered plugins with state and reason")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(handler=cmd_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
