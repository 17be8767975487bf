"""Operations: health, readiness, request logs, and error pages for the browser."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from kernel import create_app
from kernel.logs import JsonFormatter, request_line
from kernel.plugin.manager import BUNDLED_PLUGINS
from tests.conftest import make_settings


def test_healthz_answers_ok(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_ready_once_started(client: TestClient) -> None:
    body = client.get("/readyz").json()
    assert body == {"status": "ready", "checks": {"database": "ok", "plugins": "started", "bus": "in_process"}}


def test_readyz_is_503_before_the_plugins_have_started(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "data"))
    response = TestClient(app).get("/readyz")  # no lifespan: nothing has started
    assert response.status_code == 503
    assert response.json()["checks"]["plugins"] == "starting"


def test_every_request_is_logged_as_structured_fields(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="everything.requests"):
        response = client.get("/api/users/nobody_home")
    record = next(record for record in caplog.records if record.name == "everything.requests")
    assert record.method == "GET"  # type: ignore[attr-defined]
    assert record.path == "/api/users/nobody_home"  # type: ignore[attr-defined]
    assert record.status == 404  # type: ignore[attr-defined]
    assert record.duration_ms >= 0  # type: ignore[attr-defined]
    assert record.request_id == response.headers["X-Request-ID"]  # type: ignore[attr-defined]


def test_a_crashing_page_shows_a_500_page_inside_the_layout(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", plugins={"enabled": [*BUNDLED_PLUGINS, "recorder"]})
    app = create_app(settings, plugins={"recorder": "tests.plugin_fixtures.recorder"})
    with TestClient(app, raise_server_exceptions=False) as browser:
        response = browser.get("/recorder/explode", headers={"accept": "text/html"})
    assert response.status_code == 500
    assert 'class="topbar"' in response.text and "Something went wrong" in response.text
    assert "RuntimeError" not in response.text


def test_json_logs_are_one_object_per_line() -> None:
    record = logging.LogRecord("everything.requests", logging.INFO, __file__, 1, "request", (), None)
    record.status = 201
    line = JsonFormatter().format(record)
    parsed = json.loads(line)
    assert parsed["message"] == "request" and parsed["status"] == 201 and parsed["level"] == "info"
    assert "\n" not in line


def test_the_direct_request_line_matches_the_formatter() -> None:
    record = logging.LogRecord("everything.requests", logging.INFO, __file__, 0, "request", None, None)
    fields = {
        "event": "request",
        "request_id": "00ff",
        "method": "GET",
        "path": '/we"ird\\path/ünï',
        "status": 404,
        "duration_ms": 1.25,
        "user": None,
        "client": "127.0.0.1",
    }
    record.__dict__.update(fields)
    expected = json.loads(JsonFormatter().format(record))
    direct = json.loads(request_line("00ff", "GET", '/we"ird\\path/ünï', 404, 1.25, None, "127.0.0.1"))
    assert {key: value for key, value in direct.items() if key != "time"} == {
        key: value for key, value in expected.items() if key != "time"
    }


def test_a_500_carries_the_request_id_that_its_log_line_names(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path / "data", plugins={"enabled": [*BUNDLED_PLUGINS, "recorder"]})
    app = create_app(settings, plugins={"recorder": "tests.plugin_fixtures.recorder"})
    with TestClient(app) as client, caplog.at_level(logging.ERROR, logger="everything.errors"):
        response = client.get("/api/recorder/explode")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    logged = next(record for record in caplog.records if record.name == "everything.errors")
    assert logged.request_id == response.headers["X-Request-ID"]  # type: ignore[attr-defined]
