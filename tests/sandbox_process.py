"""``everything sandbox`` as a process for tests: started with a settings file, read until ready, its printed logins parsed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import serve_env

LOOPBACK_CONFIG = """
[plugins.calls]
host_addresses = ["127.0.0.1"]
[plugins.spaces]
host_addresses = ["127.0.0.1"]
"""
BOOT_SECONDS = 120
REPO = Path(__file__).resolve().parent.parent


def sandbox_env(paths: Sequence[Path] = ()) -> dict[str, str]:
    """The tests' environment without their own settings, running this checkout's code (and ``paths``) whatever is installed."""
    return {**serve_env(), "PYTHONPATH": os.pathsep.join(str(path) for path in [*paths, REPO])}


@dataclass
class Sandbox:
    process: subprocess.Popen[str]
    output: list[str]
    url: str = ""
    password: str = ""
    folder: Path = Path()
    logins: dict[str, str] = field(default_factory=dict)  # username -> the row's text

    @contextmanager
    def client(self, username: str) -> Iterator[httpx.Client]:
        """A client logged in as ``username`` with the printed password (the session cookie and CSRF token)."""
        with httpx.Client(base_url=self.url, trust_env=False, timeout=30) as client:
            response = client.post("/api/auth/login", json={"username": username, "password": self.password})
            assert response.status_code == 200, response.text
            client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
            yield client

    def token(self, username: str) -> str:
        with self.client(username) as client:
            return client.post("/api/auth/tokens", json={"name": "test"}).json()["token"]


def start_sandbox(workdir: Path, *options: str, settings: str = "", paths: Sequence[Path] = ()) -> Sandbox:
    """Run ``everything sandbox`` (peers on loopback, ``settings`` added to its file) and read its output until it is ready."""
    workdir.mkdir(exist_ok=True)
    config = workdir / "sandbox.toml"
    config.write_text(settings + LOOPBACK_CONFIG)
    process = subprocess.Popen(
        [sys.executable, "-m", "kernel.cli", "sandbox", "--port", "0", "--config", str(config), *options],
        cwd=workdir, env=sandbox_env(paths), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if line.startswith("Ready."):
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    # Standard error carries the server's log lines: drain it so that the process never blocks on a full pipe.
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(process.stderr or []), daemon=True).start()
    if not ready.wait(BOOT_SECONDS) or not any(line.startswith("Ready.") for line in output):
        process.kill()
        process.wait(timeout=30)
        raise AssertionError("the sandbox did not become ready:\n" + "\n".join(output) + "".join(errors[-40:]))
    sandbox = Sandbox(process, output)
    for line in output:
        if line.startswith("Everything sandbox: "):
            sandbox.url = line.split(": ", 1)[1]
        elif line.startswith("Password of every login: "):
            sandbox.password = line.split(": ", 1)[1]
        elif line.startswith("Data: "):
            sandbox.folder = Path(line.split(" ")[1])
        elif match := re.match(r"^\s*@(\w+)\s", line):
            sandbox.logins[match.group(1)] = line
    return sandbox


def stop(sandbox: Sandbox, how: signal.Signals = signal.SIGINT) -> int:
    sandbox.process.send_signal(how)
    return sandbox.process.wait(timeout=60)


@contextmanager
def started(workdir: Path, *options: str, settings: str = "", paths: Sequence[Path] = ()) -> Iterator[Sandbox]:
    """A sandbox for the length of the block, stopped (and waited for) even when the block fails."""
    sandbox = start_sandbox(workdir, *options, settings=settings, paths=paths)
    try:
        yield sandbox
    finally:
        if sandbox.process.poll() is None:
            stop(sandbox)
