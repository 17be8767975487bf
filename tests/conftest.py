"""Shared fixtures: a fresh application per test, on SQLite and, when configured, on PostgreSQL.

Set ``EVERYTHING_TEST_DATABASE_URL`` to a PostgreSQL server URL and every
test that uses the ``app`` fixture runs a second time against a database
created for it on that server.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kernel import create_app
from kernel.plugin.manager import BUNDLED_PLUGINS
from kernel.settings import Settings, normalise_database_url

# The feature teams' kit, a plugin of these tests (below), serves their live servers: rewrite its asserts as a plugin's.
pytest.register_assert_rewrite("sandbox.testing")
from sandbox.testing import LiveServer  # noqa: E402

# The browser tests' Chromium fixture lives with the rest of their kit, the deployment tests' report hook with theirs;
# the feature teams' kit is tested through its fixture.
pytest_plugins = ["tests.browser_kit", "tests.deployment_kit", "sandbox.testing"]

PASSWORD = "correct horse battery"
POSTGRES_URL = os.environ.get("EVERYTHING_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("EVERYTHING_TEST_REDIS_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None for the embedded SQLite; else a PostgreSQL database made for this test and dropped after."""
    if request.param == "sqlite":
        yield None
        return
    assert POSTGRES_URL is not None
    with postgres_database(POSTGRES_URL) as url:
        yield url


@pytest.fixture
def database() -> Iterator[str | None]:
    """A PostgreSQL database for a deployment of several processes when the tests have a server, else None (SQLite in the work folder)."""
    if POSTGRES_URL is None:
        yield None
        return
    with postgres_database(POSTGRES_URL) as url:
        yield url


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A database made on the PostgreSQL server at ``server_url`` for the block, dropped after; yields its URL."""
    server = sqlalchemy.make_url(normalise_database_url(server_url))
    name = f"everything_test_{secrets.token_hex(6)}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def make_settings(data_dir: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    """Settings for a test deployment in ``data_dir``."""
    data: dict[str, Any] = {"data_dir": data_dir, "database": {"url": database_url, "auto_migrate": True}, **overrides}
    return Settings.model_validate(data)


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return make_settings(tmp_path / "data", database_url)


@contextmanager
def running(app: Starlette) -> Iterator[TestClient]:
    """Start ``app`` (lifespan) and make every client of :func:`sign_up` share its event loop.

    Realtime connections of different users must live on the loop the
    server's tasks run on, as they do under uvicorn; a TestClient otherwise
    runs each client's requests on a loop of its own.
    """
    with TestClient(app) as client:
        app.state.test_portal = client.portal
        try:
            yield client
        finally:
            app.state.test_portal = None


@pytest.fixture
def app(settings: Settings) -> Iterator[Starlette]:
    """A started application with the bundled plugins."""
    application = create_app(settings)
    with running(application):
        yield application


RECORDER = {"recorder": "tests.plugin_fixtures.recorder"}


def recorder_settings(data_dir: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    """Settings with the bundled plugins and the recorder test plugin enabled."""
    plugins = {"enabled": [*BUNDLED_PLUGINS, "recorder"], **overrides.pop("plugins", {})}
    return make_settings(data_dir, database_url, plugins=plugins, **overrides)


@pytest.fixture
def recorder_app(tmp_path: Path, database_url: str | None) -> Iterator[Starlette]:
    """A started application with the bundled plugins and the recorder, which implements every hook."""
    application = create_app(recorder_settings(tmp_path / "data", database_url), plugins=RECORDER)
    with running(application):
        yield application


def make_operator(app: Starlette, username: str) -> UserClient:
    """Sign a user up and give them operator rights, as `everything users set-admin` does."""
    from kernel import admin

    client = sign_up(app, username)
    kernel = app.state.kernel
    admin.set_admin(kernel, kernel.user(username), True, "test")
    return client


@pytest.fixture
def client(app: Starlette) -> TestClient:
    """An anonymous API client."""
    return TestClient(app, raise_server_exceptions=False)


class UserClient(TestClient):
    """A client signed in as one user, sending its CSRF token on every request."""

    username: str


def sign_up(app: Starlette, username: str, password: str = PASSWORD, display_name: str | None = None) -> UserClient:
    """Sign a new user up through the API and return a client holding their session."""
    client = UserClient(app, raise_server_exceptions=False)
    client.portal = getattr(app.state, "test_portal", None)
    body: dict[str, Any] = {"username": username, "password": password}
    if display_name is not None:
        body["display_name"] = display_name
    response = client.post("/api/auth/signup", json=body)
    assert response.status_code == 201, response.text
    client.headers["X-CSRF-Token"] = response.headers["X-CSRF-Token"]
    client.username = username
    return client


@pytest.fixture
def alice(app: Starlette) -> UserClient:
    return sign_up(app, "alice", display_name="Alice Liddell")


@pytest.fixture
def bob(app: Starlette) -> UserClient:
    return sign_up(app, "bob_b", display_name="Bob Builder")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check the error shape; returns the error object."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return error


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """The application with the bundled plugins, on a real socket."""
    with LiveServer(create_app(settings)) as server:
        yield server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_env(database_url: str | None = None) -> dict[str, str]:
    """This environment without the tests' own ``EVERYTHING_*`` settings, with the database given (else the embedded one)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVERYTHING_") and key != "DATABASE_URL"}
    return {**env, "EVERYTHING_DATABASE__URL": database_url} if database_url else env


def wait_ready(url: str, process: subprocess.Popen[str], output: Callable[[], str] | None = None, seconds: float = 60) -> None:
    """Until ``url``'s ``/readyz`` answers 200; AssertionError with ``output()`` (else its standard error) if ``process`` exits first."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            said = output() if output is not None else process.stderr.read() if process.stderr else ""
            raise AssertionError(f"serve exited early:\n{said}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not become ready within {seconds:g} s")
        time.sleep(0.1)


@contextmanager
def serve_process(workdir: Path, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run `everything serve` in ``workdir`` (with ``env`` on top of :func:`serve_env`); yields its URL and process once ready."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kernel.cli", "serve", "--port", str(port)],
        cwd=workdir,
        env={**serve_env(), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        # Standard error is only read on failure: drain it so that the server never blocks on a full pipe.
        threading.Thread(target=lambda: process.stderr and process.stderr.read(), daemon=True).start()
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


@contextmanager
def serve(workdir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run `everything serve` in ``workdir`` with its defaults (and ``env``); yields its base URL once ready."""
    with serve_process(workdir, env) as (url, _process):
        yield url
