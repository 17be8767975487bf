"""`everything serve` as a real process: it migrates its embedded database, keeps its secret, serves sign-ups."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import PASSWORD, serve


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
