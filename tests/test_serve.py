"""`everything serve` as a real process: it migrates its embedded database, keeps its secret, serves sign-ups."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import PASSWORD


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(workdir: Path) -> Iterator[str]:
    """Run `everything serve` in ``workdir`` with its defaults; yields its base URL once ready."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVERYTHING_") and key != "DATABASE_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kernel.cli", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{process.stdout.read() if process.stdout else ''}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("serve did not become ready within 60 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_starts_on_sqlite_in_the_data_folder_and_signs_up(tmp_path: Path) -> None:
    with serve(tmp_path) as url:
        response = httpx.post(f"{url}/api/auth/signup", json={"username": "realproc", "password": PASSWORD}, timeout=30)
        assert response.status_code == 201
        assert response.json()["username"] == "realproc"
        assert httpx.get(f"{url}/api/users/realproc", timeout=10).status_code == 200
        assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    assert (tmp_path / "everything-data" / "everything.db").exists()
    assert (tmp_path / "everything-data" / "secret_key").exists()


def test_serve_keeps_its_secret_key_and_data_across_restarts(tmp_path: Path) -> None:
    with serve(tmp_path) as url:
        client = httpx.Client(base_url=url, timeout=30)
        assert client.post("/api/auth/signup", json={"username": "staysin", "password": PASSWORD}).status_code == 201
        cookie = client.cookies["everything_session"]
    secret = (tmp_path / "everything-data" / "secret_key").read_text()
    with serve(tmp_path) as url:
        again = httpx.Client(base_url=url, timeout=30, cookies={"everything_session": cookie})
        assert again.get("/api/me").json()["username"] == "staysin"
    assert (tmp_path / "everything-data" / "secret_key").read_text() == secret
