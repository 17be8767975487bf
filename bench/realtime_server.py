"""The server half of ``bench/realtime.py``: the full application plus the bench-only realtime plugin under uvicorn.

Not a benchmark of its own (its figures are bench/realtime.py's): the
coordinator starts it as

    python bench/realtime.py serve --port 8001 --data-dir /tmp/x [--create-users 1000 --users-file users.json]
                                    [--ws auto] [--no-request-log] [--bus-url redis://127.0.0.1:6379/0]

Builds ``kernel.create_app`` with every bundled plugin and ``bench``
(``bench/realtime_plugin.py``) enabled, on the embedded SQLite database in
``--data-dir``, with the realtime rate limit raised out of the way
(``realtime.messages_per_second = burst = 100000``) so that a benchmark
measures delivery, not the limiter. Logging is configured as
``everything serve`` does (JSON lines on standard error), and uvicorn runs as
there too (one worker, uvloop, httptools, ``ws_max_size`` from the realtime
settings), on 127.0.0.1.

``--create-users N`` creates N accounts (``rt00000``...) and one API token
each, directly through the kernel's identity service in this process,
before the server starts listening: one argon2id hash is computed and shared
by every account (the accounts are never logged in to with a password), which
takes seconds where N sign-ups over HTTP take minutes. The ``user_created``
hook is not called for them. The usernames, ids and tokens go to
``--users-file`` as JSON.

``--bus-url`` makes it one process of a deployment on that Redis bus: start
the first with ``--create-users``, then others on the same ``--data-dir``
(the same SQLite file and secret key) without it.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # so that the plugin's import path "bench.realtime_plugin" resolves

import serve  # noqa: E402 - bench/serve.py, beside this file: how every benchmark runs uvicorn

from kernel import Kernel, create_app, logs  # noqa: E402
from kernel.passwords import hash_password  # noqa: E402
from kernel.plugin.manager import BUNDLED_PLUGINS  # noqa: E402
from kernel.settings import Settings  # noqa: E402

PLUGIN = "bench"
PLUGIN_MODULE = "bench.realtime_plugin"
USERNAME_PREFIX = "rt"


def settings_for(data_dir: Path, request_log: bool, bus_url: str | None = None, secret_key: str | None = None) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": data_dir,
            "bus": {"url": bus_url},
            "secret_key": secret_key,
            "database": {"url": None, "auto_migrate": True},
            "log": {"requests": request_log},
            "plugins": {"enabled": [*BUNDLED_PLUGINS, PLUGIN]},
            "realtime": {"messages_per_second": 100_000, "burst": 100_000},
        }
    )


def username(number: int) -> str:
    return f"{USERNAME_PREFIX}{number:05d}"


def create_users(kernel: Kernel, count: int) -> list[dict[str, object]]:
    """``count`` accounts with one token each, straight through the identity service."""
    kernel.upgrade_database()
    password_hash = hash_password("bench password, never used to log in")
    created = []
    for number in range(count):
        name = username(number)
        user = kernel.identity.create_user(name, password_hash, name)
        token = kernel.identity.create_token(user.id, "bench")["token"]
        created.append({"username": name, "id": user.id, "token": token})
    return created


def raise_file_limit() -> None:
    """A thousand sockets need more descriptors than some shells allow by default."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str]) -> None:
    """Serve until stopped; ``argv`` are the options above."""
    parser = argparse.ArgumentParser(prog="bench/realtime.py serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--create-users", type=int, default=0, metavar="N")
    parser.add_argument("--users-file", type=Path)
    parser.add_argument(
        "--ws", default="auto", help="uvicorn's websocket implementation (default %(default)s, as `everything serve`)"
    )
    parser.add_argument("--no-request-log", action="store_true", help="log.requests = false")
    parser.add_argument("--bus-url", help="bus.url: a redis:// URL shared by the deployment's processes")
    parser.add_argument("--secret-key", help="secret_key, the same for every process (required with --bus-url)")
    args = parser.parse_args(argv)
    if args.create_users and args.users_file is None:
        parser.error("--create-users needs --users-file")
    raise_file_limit()

    settings = settings_for(args.data_dir, request_log=not args.no_request_log, bus_url=args.bus_url, secret_key=args.secret_key)
    logs.configure(settings.log.level)  # as `everything serve` does
    app = create_app(settings, plugins={PLUGIN: PLUGIN_MODULE})
    kernel = app.state.kernel
    record = kernel.plugins.records.get(PLUGIN)
    if record is None or not record.running:
        sys.exit(f"the {PLUGIN} plugin did not boot: {record.reason if record else 'not discovered'}")
    if args.create_users:
        users = create_users(kernel, args.create_users)
        args.users_file.write_text(json.dumps(users))

    serve.run(app, args.port, ws=args.ws, ws_max_size=settings.realtime.max_frame_bytes)  # as `everything serve`

