"""Operator switches: plugins on and off at run time, persisted, effective in every process within seconds."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kernel import create_app
from kernel.cli import main as cli
from tests.conftest import (
    PASSWORD,
    RECORDER,
    assert_error,
    make_operator,
    make_settings,
    recorder_settings,
    running,
    serve,
    sign_up,
)
from tests.plugin_fixtures import recorder

HTML = {"accept": "text/html"}


def state_of(operator: TestClient, name: str) -> dict:
    return next(plugin for plugin in operator.get("/api/admin/plugins").json()["results"] if plugin["name"] == name)


def test_a_switched_off_plugin_disappears_everywhere_and_comes_back(recorder_app: Starlette) -> None:
    operator = make_operator(recorder_app, "oscar")
    alice = sign_up(recorder_app, "alice")
    sign_up(recorder_app, "bob_b")
    assert operator.post("/api/admin/plugins/recorder/disable").json()["state"] == "off"

    assert_error(alice.get("/api/recorder/ping"), 404, "not_found")
    assert alice.get("/recorder/", headers=HTML).status_code == 404
    assert alice.get("/static/plugins/recorder/hello.txt").status_code == 404
    profile = alice.get("/@bob_b", headers=HTML).text
    assert "Recorder" not in profile and "Wave at" not in profile
    assert "recorder.echo" not in {feature["key"] for feature in alice.get("/api/entitlements").json()["features"]}
    with alice.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "recorder.echo", "id": 1, "text": "hi"})
        error = ws.receive_json()
    assert error["code"] == "plugin_disabled" and error["ref"] == 1

    assert operator.post("/api/admin/plugins/recorder/enable").json()["state"] == "enabled"
    assert alice.get("/api/recorder/ping").status_code == 200
    assert "Wave at" in alice.get("/@bob_b", headers=HTML).text


def test_switching_runs_the_plugin_s_shutdown_and_startup_and_tells_the_plugins(recorder_app: Starlette) -> None:
    operator = make_operator(recorder_app, "oscar")
    kernel = recorder_app.state.kernel
    operator.post("/api/admin/plugins/recorder/disable")
    operator.post("/api/admin/plugins/recorder/enable")
    operator.post("/api/admin/plugins/calls/disable")
    lifecycle = [call for call in recorder.calls(kernel) if call in ("startup", "shutdown") or call.startswith("plugin_switched")]
    assert lifecycle == ["startup", "shutdown", "startup", "plugin_switched:recorder:on", "plugin_switched:calls:off"]


def test_a_switch_survives_a_restart(tmp_path: Path) -> None:
    settings = recorder_settings(tmp_path / "data")
    app = create_app(settings, plugins=RECORDER)
    with running(app):
        make_operator(app, "oscar").post("/api/admin/plugins/recorder/disable")
    again = create_app(settings, plugins=RECORDER)
    with running(again):
        assert again.state.kernel.plugins.records["recorder"].state == "off"
        assert_error(TestClient(again).get("/api/recorder/ping"), 404, "not_found")
        assert "startup" not in recorder.calls(again.state.kernel)


def test_a_switch_in_one_app_leaves_another_app_in_the_same_process_alone(tmp_path: Path) -> None:
    # The feed keeps its routes in a module-level list, which both apps are handed.
    first, second = create_app(make_settings(tmp_path / "first")), create_app(make_settings(tmp_path / "second"))
    with running(first), TestClient(second) as other:
        make_operator(first, "oscar").post("/api/admin/plugins/feed/disable")
        assert other.get("/api/feed/explore").status_code == 200


def test_a_plugin_that_requires_a_switched_off_one_goes_off_with_it(tmp_path: Path) -> None:
    settings = recorder_settings(tmp_path / "data", plugins={"enabled": ["recorder", "needs_recorder"]})
    app = create_app(settings, plugins={**RECORDER, "needs_recorder": "tests.plugin_fixtures.needs_recorder"})
    with running(app):
        operator = make_operator(app, "oscar")
        operator.post("/api/admin/plugins/recorder/disable")
        dependent = state_of(operator, "needs_recorder")
        assert dependent["state"] == "off" and "recorder" in dependent["reason"]
        assert operator.get("/api/needs_recorder/hi").status_code == 404
        operator.post("/api/admin/plugins/recorder/enable")
        assert state_of(operator, "needs_recorder")["state"] == "enabled"
        assert operator.get("/api/needs_recorder/hi").text == "hi"


def test_only_plugins_that_booted_can_be_switched(tmp_path: Path) -> None:
    settings = recorder_settings(tmp_path / "data", plugins={"enabled": ["recorder", "broken_import"]})
    app = create_app(settings, plugins={**RECORDER, "broken_import": "tests.plugin_fixtures.broken_import"})
    with running(app):
        operator = make_operator(app, "oscar")
        assert_error(operator.post("/api/admin/plugins/broken_import/enable"), 409, "plugin_not_switchable")
        assert_error(operator.post("/api/admin/plugins/calls/enable"), 409, "plugin_not_switchable")  # not in plugins.enabled
        assert_error(operator.post("/api/admin/plugins/nosuch/enable"), 404, "not_found")
        assert_error(operator.post("/api/admin/plugins/recorder/explode"), 404, "not_found")


def test_only_operators_may_switch(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    assert_error(alice.post("/api/admin/plugins/recorder/disable"), 403, "admin_required")
    assert_error(TestClient(recorder_app).post("/api/admin/plugins/recorder/disable"), 401, "unauthorized")
    assert alice.get("/api/recorder/ping").status_code == 200


def test_the_cli_switch_reaches_a_running_server_within_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(recorder_settings(tmp_path / "data", entitlements={"refresh_seconds": 0.2}), plugins=RECORDER)
    with running(app):
        client = TestClient(app)
        assert cli(["plugins", "disable", "calls", "--data-dir", str(tmp_path / "data")]) == 0
        assert "plugin calls is now off" in capsys.readouterr().err
        deadline = time.monotonic() + 5
        while app.state.kernel.plugins.records["calls"].running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.kernel.plugins.records["calls"].state == "off"
        assert cli(["plugins", "--data-dir", str(tmp_path / "data")]) == 0
        assert "switched off by an operator" in capsys.readouterr().out
        assert cli(["plugins", "enable", "calls", "--data-dir", str(tmp_path / "data")]) == 0
        deadline = time.monotonic() + 5
        while not app.state.kernel.plugins.records["calls"].running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.kernel.plugins.records["calls"].running
        assert client.get("/healthz").status_code == 200


def test_a_switch_made_in_one_server_process_reaches_another(tmp_path: Path) -> None:
    with serve(tmp_path) as first, serve(tmp_path) as second:
        signed_up = httpx.post(f"{first}/api/auth/signup", json={"username": "oscar", "password": PASSWORD}, timeout=30)
        assert cli(["users", "set-admin", "oscar", "--data-dir", str(tmp_path / "everything-data")]) == 0
        operator = httpx.Client(base_url=first, timeout=30, cookies=signed_up.cookies, headers={"X-CSRF-Token": signed_up.headers["X-CSRF-Token"]})
        deadline = time.monotonic() + 10  # the server caches account rows for a few seconds
        while not operator.get("/api/me").json()["is_admin"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert operator.post("/api/admin/plugins/payments/disable").json()["state"] == "off"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            plugins = httpx.get(f"{second}/api/plugins", timeout=10).json()
            if next(p for p in plugins["results"] if p["name"] == "payments")["state"] == "off":
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the second process did not switch payments off within 10 s")
