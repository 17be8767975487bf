"""The plugin manager: discovery, the enabled list, and each boot failure disabling only its plugin."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kernel import create_app
from kernel.plugin.manager import BUNDLED_PLUGINS
from kernel.settings import SettingsError
from tests.conftest import make_settings
from tests.plugin_fixtures import recorder

FIXTURES = "tests.plugin_fixtures"


def boot(tmp_path: Path, *names: str, enabled: list[str] | None = None, plugin_settings: dict[str, Any] | None = None) -> TestClient:
    """A started app with the bundled plugins plus the named fixture plugins, all enabled."""
    plugins_section: dict[str, Any] = {"enabled": enabled if enabled is not None else [*BUNDLED_PLUGINS, *names]}
    plugins_section.update(plugin_settings or {})
    settings = make_settings(tmp_path / "data", plugins=plugins_section)
    app = create_app(settings, plugins={name: f"{FIXTURES}.{name}" for name in names})
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    return client


def states(client: TestClient) -> dict[str, dict[str, Any]]:
    response = client.get("/api/plugins")
    assert response.status_code == 200
    return {plugin["name"]: plugin for plugin in response.json()["results"]}


def assert_rest_came_up(client: TestClient, failed: str) -> None:
    listed = states(client)
    for name in BUNDLED_PLUGINS:
        assert listed[name]["state"] == "enabled", listed[name]
    assert listed["recorder"]["state"] == "enabled"
    assert client.get("/api/recorder/ping").json()["pong"] is True
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert listed[failed]["state"] == "failed"


@pytest.fixture
def started(tmp_path: Path):  # type: ignore[no-untyped-def]
    clients: list[TestClient] = []

    def start(*names: str, **kwargs: Any) -> TestClient:
        client = boot(tmp_path, *names, **kwargs)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def test_bundled_plugins_are_all_enabled_by_default(client: TestClient) -> None:
    listed = states(client)
    assert set(BUNDLED_PLUGINS) <= set(listed)
    for name in BUNDLED_PLUGINS:
        assert listed[name]["state"] == "enabled"
        assert listed[name]["version"]
        assert listed[name]["reason"] is None
        assert listed[name]["source"] == "bundled"


def test_plugin_left_out_of_enabled_list_is_disabled_by_config(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", enabled=["feed", "recorder"])
    listed = states(client)
    assert listed["calls"]["state"] == "disabled"
    assert listed["calls"]["reason"] == "not in plugins.enabled"
    assert listed["feed"]["state"] == "enabled"


def test_routes_of_a_disabled_plugin_answer_404(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", enabled=["feed"])
    assert states(client)["recorder"]["state"] == "disabled"
    response = client.get("/api/recorder/ping")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_enabling_an_unknown_plugin_is_a_settings_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", plugins={"enabled": ["feed", "nonesuch"]})
    with pytest.raises(SettingsError, match="plugins.enabled: unknown plugin 'nonesuch'"):
        create_app(settings)


def test_plugin_that_fails_to_import_is_disabled_alone(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "broken_import")
    assert_rest_came_up(client, "broken_import")
    assert "failed to import" in states(client)["broken_import"]["reason"]
    assert "dependency is missing" in states(client)["broken_import"]["reason"]


def test_plugin_with_unmet_requires_is_disabled_alone(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "needs_ghost")
    assert_rest_came_up(client, "needs_ghost")
    assert states(client)["needs_ghost"]["reason"] == "requires plugin 'ghost', which is not installed"


def test_plugin_requiring_a_disabled_plugin_is_disabled(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "needs_recorder", enabled=["feed", "needs_recorder"])
    listed = states(client)
    assert listed["needs_recorder"]["state"] == "failed"
    assert listed["needs_recorder"]["reason"] == "requires plugin 'recorder', which is not enabled"
    assert client.get("/api/needs_recorder/hi").status_code == 404


def test_plugin_requiring_an_enabled_plugin_runs(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "needs_recorder")
    assert states(client)["needs_recorder"]["state"] == "enabled"
    assert client.get("/api/needs_recorder/hi").text == "hi"


def test_plugin_with_a_route_outside_its_namespace_is_disabled_alone(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "stray_route")
    assert_rest_came_up(client, "stray_route")
    assert "route '/login' is outside its namespace" in states(client)["stray_route"]["reason"]
    # Neither its stray route nor its lawful one is served.
    assert "hijacked" not in client.get("/login").text
    assert client.get("/api/stray_route/fine").status_code == 404


def test_plugin_redeclaring_a_feature_key_is_disabled_alone(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "duplicate_feature")
    assert_rest_came_up(client, "duplicate_feature")
    assert states(client)["duplicate_feature"]["reason"] == (
        "feature key 'recorder.echo' is already declared by plugin 'recorder'"
    )


def test_plugin_with_a_misspelled_hook_is_disabled_alone(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "misspelled_hook")
    assert_rest_came_up(client, "misspelled_hook")
    assert states(client)["misspelled_hook"]["reason"] == "implements unknown hook 'register_route' (misspelled?)"


def test_plugin_with_a_hook_wrapper_is_disabled_alone(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "wrapper_hook")
    assert_rest_came_up(client, "wrapper_hook")
    assert states(client)["wrapper_hook"]["reason"] == "hook wrappers are not supported ('nav_items')"
    assert "Injected" not in client.get("/directory", headers={"accept": "text/html"}).text


def test_a_plugin_raising_in_a_page_hook_is_left_out_of_that_page(started, caplog) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "faulty_hooks")
    client.post("/api/auth/signup", json={"username": "visited", "password": "correct horse battery"})
    page = client.get("/@visited", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "Recorder" in page.text  # the recorder's nav item and profile section still come
    assert states(client)["faulty_hooks"]["state"] == "enabled"
    logged = [record.getMessage() for record in caplog.records]
    assert "plugin faulty_hooks raised in hook nav_items" in logged
    assert "plugin faulty_hooks raised in hook profile_sections" in logged


def test_a_hook_the_contract_does_not_declare_cannot_be_called(client: TestClient) -> None:
    kernel = client.app.state.kernel  # type: ignore[attr-defined]
    assert kernel.hook.nav_items  # declared: a pluggy caller
    with pytest.raises(AttributeError, match="no hook named 'nav_itemz' in kernel.plugin.hookspecs"):
        kernel.hook.nav_itemz


def test_the_first_plugin_to_answer_subscribe_url_wins(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder")
    page = client.get("/premium", headers={"accept": "text/html"}).text
    # The recorder, installed after the bundled plugins, is asked first and answers: payments is not asked.
    assert "/recorder/?subscribe=premium" in page
    assert "/payments/subscribe/premium" not in page


def test_collecting_hooks_ask_the_plugin_installed_last_first(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder")
    client.post("/api/auth/signup", json={"username": "viewer", "password": "correct horse battery"})
    page = client.get("/directory", headers={"accept": "text/html"}).text
    scripts = re.findall(r'<script[^>]* src="/static/plugins/(\w+)/', page)
    # page_assets answers in pluggy's order: the recorder (given, so installed last) before the bundled calls.
    assert scripts.index("recorder") < scripts.index("calls")


def test_plugin_with_invalid_settings_is_disabled_alone(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "strict_settings", plugin_settings={"strict_settings": {"max_items": "lots"}})
    assert_rest_came_up(client, "strict_settings")
    reason = states(client)["strict_settings"]["reason"]
    assert reason.startswith("invalid setting 'plugins.strict_settings.max_items'")


def test_plugin_with_an_unknown_setting_is_disabled_alone(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "strict_settings", plugin_settings={"strict_settings": {"max_itmes": 3}})
    assert_rest_came_up(client, "strict_settings")
    assert "plugins.strict_settings.max_itmes" in states(client)["strict_settings"]["reason"]


def test_plugin_settings_reach_the_plugin(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", plugin_settings={"recorder": {"greeting": "ahoy"}})
    assert client.get("/api/recorder/ping").json()["greeting"] == "ahoy"


def test_plugin_whose_startup_raises_is_disabled_alone(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "failing_startup")
    assert_rest_came_up(client, "failing_startup")
    assert states(client)["failing_startup"]["reason"] == (
        "start-up raised ConnectionError: could not reach the upstream service"
    )
    assert client.get("/api/failing_startup/hi").status_code == 404


def test_exception_in_a_plugin_route_is_a_500_for_that_request_only(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder")
    response = client.get("/api/recorder/explode")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "RuntimeError" not in response.text and "Traceback" not in response.text
    assert client.get("/api/recorder/ping").status_code == 200
    assert states(client)["recorder"]["state"] == "enabled"


def test_plugin_templates_render_inside_the_layout(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder")
    response = client.get("/recorder/", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "<h1>Recorder page</h1>" in response.text
    assert 'class="topbar"' in response.text


def test_cli_lists_every_plugin_with_state_and_reason(tmp_path: Path) -> None:
    config = tmp_path / "everything.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[plugins]\nenabled = ["feed", "calls"]\n')
    result = subprocess.run(
        [sys.executable, "-m", "kernel.cli", "plugins", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    listed = {plugin["name"]: plugin for plugin in json.loads(result.stdout)}
    assert listed["feed"]["state"] == "enabled"
    assert listed["payments"]["state"] == "disabled"
    assert listed["payments"]["reason"] == "not in plugins.enabled"

    table = subprocess.run(
        [sys.executable, "-m", "kernel.cli", "plugins", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert table.returncode == 0
    assert "payments" in table.stdout and "not in plugins.enabled" in table.stdout


def test_recorder_sees_lifecycle_hooks_in_order(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder")
    kernel = client.app.state.kernel  # type: ignore[attr-defined]
    assert recorder.calls(kernel)[:4] == ["register_features", "register_routes", "register_realtime", "startup"]


def test_plugin_named_after_a_kernel_page_is_refused(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "login")
    assert_rest_came_up(client, "login")
    assert states(client)["login"]["reason"] == "name 'login' is taken by the kernel's own pages"
    assert "hijacked" not in client.get("/login").text


def test_static_files_are_served_only_while_the_plugin_runs(started) -> None:  # type: ignore[no-untyped-def]
    running = started("recorder")
    assert running.get("/static/plugins/recorder/hello.txt").text == "recorded\n"
    switched_off = started("recorder", enabled=["feed"])
    assert switched_off.get("/static/plugins/recorder/hello.txt").status_code == 404


def test_plugin_section_that_is_not_a_table_disables_that_plugin(started) -> None:  # type: ignore[no-untyped-def]
    client = started("recorder", "strict_settings", plugin_settings={"strict_settings": 5})
    assert_rest_came_up(client, "strict_settings")
    assert states(client)["strict_settings"]["reason"] == "invalid setting 'plugins.strict_settings': must be a table"
