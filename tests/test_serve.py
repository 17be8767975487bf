"""`everything serve` as a real process: it migrates its embedded database, keeps its secret, serves sign-ups, runs workers."""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, REDIS_URL, free_port, serve, serve_env, wait_ready


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


def test_serve_with_workers_refuses_to_start_without_a_redis_bus(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "kernel.cli", "serve", "--workers", "2", "--port", str(free_port())]
    result = subprocess.run(command, cwd=tmp_path, env=serve_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "bus.url" in result.stderr and "--workers 2" in result.stderr
    assert not (tmp_path / "everything-data").exists()


def worker_pids(log: Path) -> set[int]:
    """The worker processes that logged their start."""
    return {int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", log.read_text())}


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


@pytest.mark.skipif(not REDIS_URL, reason="set EVERYTHING_TEST_REDIS_URL to a Redis server (.ci/run does when Redis answers)")
def test_serve_with_two_workers_runs_two_processes_that_answer_and_stop_together(tmp_path: Path, database_url: str | None) -> None:
    assert REDIS_URL is not None
    port, log = free_port(), tmp_path / "serve.log"
    env = {
        **serve_env(database_url),
        "EVERYTHING_BUS__URL": REDIS_URL,
        "EVERYTHING_SECRET_KEY": secrets.token_urlsafe(32),
        "EVERYTHING_DATABASE__AUTO_MIGRATE": "true",
    }
    with log.open("w") as stderr:
        parent = subprocess.Popen(
            [sys.executable, "-m", "kernel.cli", "serve", "--workers", "2", "--port", str(port)], cwd=tmp_path, env=env, stderr=stderr, text=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, parent, output=log.read_text)
        deadline = time.monotonic() + 60
        while len(worker_pids(log)) < 2 or log.read_text().count("Application startup complete.") < 2:
            assert parent.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        workers = worker_pids(log)
        assert len(workers) == 2 and all(parent_of(pid) == parent.pid for pid in workers)
        # The parent migrated once, before any worker started.
        assert log.read_text().count("Running upgrade  -> kernel_0001") == 1
        # Each periodic job runs in one of the workers: the other never takes its lock while the first lives.
        for job in ("payments-billing-look", "payments-interest", "trading-matcher"):
            while f"now runs the periodic job {job}" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            assert log.read_text().count(f"now runs the periodic job {job}") == 1
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.post("/api/auth/signup", json={"username": "manyproc", "password": PASSWORD}).status_code == 201
            cookie = client.cookies["everything_session"]
        for _ in range(10):  # a fresh connection each time: whichever worker accepts it knows the session
            me = httpx.get(f"{url}/api/me", cookies={"everything_session": cookie}, headers={"Connection": "close"}, timeout=30)
            assert me.json()["username"] == "manyproc"
        # Each request is logged once, by the kernel (not again by uvicorn's access log); lines are written in batches.
        deadline = time.monotonic() + 30
        while len(requests_logged := [line for line in log.read_text().splitlines() if "/api/me" in line]) < 10:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert len(requests_logged) == 10 and all('"logger":"everything.requests"' in line for line in requests_logged)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 0
        assert all(parent_of(pid) is None for pid in workers)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=30)
