"""Serve one application under uvicorn (uvloop, httptools, access log off) for the benchmarks.

The benchmarks start this as a subprocess, one worker each, on a loopback port:

    python bench/serve.py bare --port 8001
    python bench/serve.py kernel --port 8002 --data-dir /tmp/x [--database-url URL] [--no-request-log]

``kernel`` builds the full application with :func:`kernel.create_app` (every
bundled plugin; structured request logs on unless ``--no-request-log``) and
configures logging exactly as ``everything serve`` does: JSON lines on
standard error, which the benchmark sends to a file. ``bare`` is a Starlette
app with one hello-world JSON route.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kernel import Kernel, User, create_app, logs
from kernel.passwords import hash_password
from kernel.settings import Settings

HOST = "127.0.0.1"


def bare_app() -> Starlette:
    async def hello(request: Request) -> Response:
        return JSONResponse({"hello": "world"})

    return Starlette(routes=[Route("/", hello)])


def kernel_settings(data_dir: Path, database_url: str | None, request_log: bool = True) -> Settings:
    """The deployment's settings: request logs on, as in production, unless turned off."""
    return Settings.model_validate(
        {"data_dir": data_dir, "database": {"url": database_url, "auto_migrate": True}, "log": {"requests": request_log}}
    )


def kernel_app(data_dir: Path, database_url: str | None, request_log: bool = True) -> Starlette:
    settings = kernel_settings(data_dir, database_url, request_log)
    logs.configure(settings.log.level)  # as `everything serve` does
    return create_app(settings)


def plugin_app(data_dir: Path, plugin: str, plugin_settings: dict[str, Any], **overrides: Any) -> Starlette:
    """A deployment for one plugin's benchmark: the embedded database migrated, no request log, and the
    realtime rate limit out of the way (the clients are the load); exits unless ``plugin`` is running.
    ``overrides`` are more top-level settings (``bus``, ``secret_key``)."""
    settings = Settings.model_validate(
        {
            "data_dir": data_dir,
            "database": {"url": None, "auto_migrate": True},
            "log": {"requests": False},
            "realtime": {"messages_per_second": 100_000, "burst": 100_000},
            "plugins": {plugin: plugin_settings},
            **overrides,
        }
    )
    logs.configure(settings.log.level)
    app = create_app(settings)
    kernel = app.state.kernel
    record = kernel.plugins.records.get(plugin)
    if record is None or not record.running:
        sys.exit(f"the {plugin} plugin did not boot: {record.reason if record else 'not discovered'}")
    kernel.upgrade_database()
    return app


@functools.cache
def _password_hash() -> str:
    return hash_password("bench password, never used to log in")


def account(kernel: Kernel, username: str) -> tuple[User, str]:
    """A user made straight in the database (thousands of sign-ups would measure argon2), and an API token for them."""
    user = kernel.identity.create_user(username, _password_hash(), username)
    return user, kernel.identity.create_token(user.id, "bench")["token"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", choices=["bare", "kernel"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-url")
    parser.add_argument("--no-request-log", action="store_true", help="kernel: log.requests = false")
    args = parser.parse_args()
    if args.app == "kernel":
        if args.data_dir is None:
            parser.error("kernel needs --data-dir")
        app = kernel_app(args.data_dir, args.database_url, request_log=not args.no_request_log)
    else:
        app = bare_app()
    run(app, args.port)


def run(app: Starlette, port: int, **options: object) -> None:
    """Serve ``app`` the way every benchmark does: one uvicorn worker on uvloop and httptools, no access log,
    and a deployment's websocket frame limit as ``everything serve`` sets it."""
    kernel = getattr(app.state, "kernel", None)
    if kernel is not None:
        options.setdefault("ws_max_size", kernel.settings.realtime.max_frame_bytes)
    uvicorn.run(
        app,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_config=None,
        lifespan="on",
        **options,  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
