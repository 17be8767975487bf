"""Entitlements: plans, grants, the one check (402 over the API, an upsell page in the browser), locks and badges."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kernel import create_app
from kernel.cli import main as cli
from kernel.plugin.manager import BUNDLED_PLUGINS
from kernel.settings import SettingsError, load_settings
from kernel.storage.models import utcnow
from tests.conftest import RECORDER, assert_error, make_operator, recorder_settings, sign_up

HTML = {"accept": "text/html"}


def features_of(client: TestClient) -> dict[str, dict]:
    response = client.get("/api/entitlements")
    assert response.status_code == 200
    return {feature["key"]: feature for feature in response.json()["features"]}


def grant(operator: TestClient, username: str, plan: str = "premium", **body: object) -> dict:
    response = operator.post(f"/api/admin/users/{username}/grants", json={"plan": plan, **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_free_user_is_refused_a_premium_route_with_402_naming_feature_plan_and_upgrade_url(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    error = assert_error(alice.get("/api/recorder/premium"), 402, "premium_required")
    assert error["feature"] == "recorder.shout"
    assert error["plan"] == "premium"
    assert error["upgrade_url"] == "/premium?feature=recorder.shout"
    assert error["message"] == "Shouting is a premium feature. Subscribe to gain access."


def test_a_granted_plan_opens_the_route_and_revoking_closes_it(recorder_app: Starlette) -> None:
    operator = make_operator(recorder_app, "oscar")
    alice = sign_up(recorder_app, "alice")
    grant(operator, "alice")
    assert alice.get("/api/recorder/premium").json() == {"shouting": True}
    assert operator.delete("/api/admin/users/alice/plans/premium").status_code == 200
    assert_error(alice.get("/api/recorder/premium"), 402, "premium_required")


def test_the_browser_gets_an_upsell_page_in_plain_words(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    page = alice.get("/recorder/premium", headers=HTML)
    assert page.status_code == 402
    assert "Shouting is a premium feature. Subscribe to gain access." in page.text
    assert "Premium" in page.text and "8.00 USD" in page.text


def test_an_anonymous_caller_is_asked_to_sign_in(recorder_app: Starlette) -> None:
    assert_error(TestClient(recorder_app).get("/api/recorder/premium"), 401, "unauthorized")
    features = features_of(TestClient(recorder_app))
    assert features["recorder.shout"]["granted"] is False
    assert features["recorder.shout"]["reason"] == "sign_in_required"


def test_entitlements_list_every_feature_of_running_plugins_with_whether_and_why(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    features = features_of(alice)
    assert set(features) >= {"kernel.verified", "recorder.echo", "recorder.shout"}
    echo, shout = features["recorder.echo"], features["recorder.shout"]
    assert echo == {**echo, "plugin": "recorder", "plan": "free", "granted": True, "reason": None, "title": "Echo"}
    assert shout == {**shout, "plugin": "recorder", "plan": "premium", "granted": False, "reason": "premium_required"}
    assert features["kernel.verified"]["plugin"] == "kernel" and features["kernel.verified"]["plan"] == "premium"
    assert alice.get("/api/entitlements").json()["plans"] == ["free"]


def test_premium_gives_the_verified_badge_next_to_the_name(recorder_app: Starlette) -> None:
    operator = make_operator(recorder_app, "oscar")
    sign_up(recorder_app, "alice", display_name="Alice")
    bob = sign_up(recorder_app, "bob_b")
    assert bob.get("/api/users/alice").json()["verified"] is False
    grant(operator, "alice")
    assert bob.get("/api/users/alice").json()["verified"] is True
    assert 'class="verified"' in bob.get("/@alice", headers=HTML).text
    assert 'class="verified"' in bob.get("/directory?q=ali", headers=HTML).text
    assert bob.get("/api/directory?q=ali").json()["results"][0]["verified"] is True


def test_an_expired_grant_stops_counting_without_any_job(tmp_path: Path) -> None:
    # The periodic refresh never runs during this test: only the grant's own end can expire it.
    settings = recorder_settings(tmp_path / "data", entitlements={"refresh_seconds": 60})
    app = create_app(settings, plugins=RECORDER)
    with TestClient(app):
        alice = sign_up(app, "alice")
        kernel = app.state.kernel
        user = kernel.user("alice")
        kernel.entitlements.grant(user, "premium", ends_at=utcnow() + timedelta(seconds=1.5))
        assert alice.get("/api/recorder/premium").status_code == 200
        time.sleep(1.7)
        assert_error(alice.get("/api/recorder/premium"), 402, "premium_required")


def test_a_scheduled_grant_counts_from_its_start(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    kernel = recorder_app.state.kernel
    kernel.entitlements.grant(kernel.user("alice"), "premium", starts_at=utcnow() + timedelta(seconds=1), days=1)
    assert alice.get("/api/recorder/premium").status_code == 402
    time.sleep(1.2)
    assert alice.get("/api/recorder/premium").status_code == 200


def test_grants_record_plan_source_window_and_reference(recorder_app: Starlette) -> None:
    operator = make_operator(recorder_app, "oscar")
    sign_up(recorder_app, "alice")
    created = grant(operator, "alice", days=7, source="trial", reference="spring promo")
    assert created["plan"] == "premium" and created["source"] == "trial" and created["reference"] == "spring promo"
    assert created["status"] == "active" and created["ends_at"] is not None
    shown = operator.get("/api/admin/users/alice").json()
    assert shown["plans"] == ["free", "premium"]
    assert [g["id"] for g in shown["grants"]] == [created["id"]]


def test_bad_grants_are_refused_and_change_nothing(recorder_app: Starlette) -> None:
    operator = make_operator(recorder_app, "oscar")
    sign_up(recorder_app, "alice")
    assert_error(operator.post("/api/admin/users/alice/grants", json={"plan": "gold"}), 422, "unknown_plan")
    assert_error(operator.post("/api/admin/users/alice/grants", json={"plan": "free"}), 422, "unknown_plan")
    assert_error(operator.post("/api/admin/users/alice/grants", json={"plan": "premium", "days": -1}), 422, "validation_error")
    assert_error(operator.post("/api/admin/users/alice/grants", json={"plan": "premium", "source": "gift"}), 422, "validation_error")
    assert_error(operator.post("/api/admin/users/nobody/grants", json={"plan": "premium"}), 404, "not_found")
    assert operator.get("/api/admin/users/alice").json()["grants"] == []


def test_navigation_and_profile_show_locked_items_leading_to_the_upsell(recorder_app: Starlette) -> None:
    operator = make_operator(recorder_app, "oscar")
    alice = sign_up(recorder_app, "alice")
    sign_up(recorder_app, "bob_b")
    page = alice.get("/@bob_b", headers=HTML).text
    assert 'href="/premium?feature=recorder.shout" class="locked"' in page  # the "Shout" nav item
    assert '<a class="button secondary locked" href="/premium?feature=recorder.shout"' in page  # the profile action
    assert "🔒" in page
    grant(operator, "alice")
    page = alice.get("/@bob_b", headers=HTML).text
    assert 'href="/recorder/premium"' in page and "locked" not in page


def test_templates_ask_the_same_check(recorder_app: Starlette) -> None:
    operator = make_operator(recorder_app, "oscar")
    alice = sign_up(recorder_app, "alice")
    assert "🔒 Shouting is a premium feature." in alice.get("/recorder/", headers=HTML).text
    grant(operator, "alice")
    assert "Shouting is yours." in alice.get("/recorder/", headers=HTML).text


def test_operators_add_plans_move_features_and_set_prices(tmp_path: Path) -> None:
    plans = {
        "premium": {"price": 999, "currency": "EUR"},
        "business": {"title": "Business", "price": 2500, "includes": ["premium"], "features": ["recorder.shout"]},
        "free": {"features": ["kernel.verified"]},
    }
    app = create_app(recorder_settings(tmp_path / "data", plans=plans), plugins=RECORDER)
    with TestClient(app):
        operator = make_operator(app, "oscar")
        alice = sign_up(app, "alice")
        listed = {plan["name"]: plan for plan in alice.get("/api/plans").json()["results"]}
        assert listed["premium"]["price"] == 999 and listed["premium"]["currency"] == "EUR"
        assert listed["business"]["price"] == 2500 and "recorder.shout" in listed["business"]["features"]
        assert "recorder.shout" not in listed["premium"]["features"]
        features = features_of(alice)
        assert features["kernel.verified"]["granted"] is True  # moved into free
        assert features["recorder.shout"]["plan"] == "business"
        grant(operator, "alice", "premium")
        assert assert_error(alice.get("/api/recorder/premium"), 402, "premium_required")["plan"] == "business"
        grant(operator, "alice", "business")
        assert alice.get("/api/recorder/premium").status_code == 200


@pytest.mark.parametrize(
    ("plans", "message"),
    [
        ({"gold": {"includes": ["platinum"]}}, "plans.gold.includes"),
        ({"premium": {"features": ["recorder.nothing"]}}, "plans.premium.features"),
        ({"premium": {"features": ["recorder.shout"]}, "free": {"features": ["recorder.shout"]}}, "also in plan"),
        ({"Gold Plan": {}}, "plan name"),
        ({"premium": {"price": -5}}, "plans.premium.price"),
    ],
)
def test_bad_plan_settings_stop_start_up_naming_the_key(tmp_path: Path, plans: dict, message: str) -> None:
    overrides = {"data_dir": str(tmp_path / "data"), "plans": plans, "plugins": {"enabled": [*BUNDLED_PLUGINS, "recorder"]}}
    with pytest.raises(SettingsError, match=message):
        create_app(load_settings(environ={}, overrides=overrides), plugins=RECORDER)


def test_a_rollout_gives_a_feature_to_a_stable_share_of_users(recorder_app: Starlette) -> None:
    operator = make_operator(recorder_app, "oscar")
    assert operator.put("/api/admin/features/recorder.echo/rollout", json={"percent": 50}).status_code == 200
    clients = [sign_up(recorder_app, f"user{i:02d}") for i in range(24)]
    first = [features_of(client)["recorder.echo"]["granted"] for client in clients]
    assert 4 <= sum(first) <= 20, "about half of the users"
    assert [features_of(client)["recorder.echo"]["granted"] for client in clients] == first, "the same users every time"
    refused = features_of(clients[first.index(False)])["recorder.echo"]
    assert refused["reason"] == "not_rolled_out"
    operator.put("/api/admin/features/recorder.echo/rollout", json={"percent": 100})
    assert all(features_of(client)["recorder.echo"]["granted"] for client in clients)


def test_a_feature_outside_its_rollout_is_refused_with_403_not_an_upsell(recorder_app: Starlette) -> None:
    operator = make_operator(recorder_app, "oscar")
    operator.put("/api/admin/features/recorder.shout/rollout", json={"percent": 0})
    grant(operator, "oscar")
    assert_error(operator.get("/api/recorder/premium"), 403, "feature_unavailable")


def test_plugins_hear_when_a_grant_starts_ends_or_is_revoked(tmp_path: Path) -> None:
    from tests.plugin_fixtures import recorder

    app = create_app(recorder_settings(tmp_path / "data", entitlements={"refresh_seconds": 0.2}), plugins=RECORDER)
    kernel = app.state.kernel
    with TestClient(app):
        operator = make_operator(app, "oscar")
        sign_up(app, "alice")
        grant(operator, "alice")
        operator.delete("/api/admin/users/alice/plans/premium")
        kernel.entitlements.grant(kernel.user("alice"), "premium", ends_at=utcnow() + timedelta(seconds=0.5))
        deadline = time.monotonic() + 10
        while "entitlements_changed:alice:premium:ended" not in recorder.calls(kernel) and time.monotonic() < deadline:
            time.sleep(0.1)
    changes = [call for call in recorder.calls(kernel) if call.startswith("entitlements_changed")]
    assert changes == [
        "entitlements_changed:alice:premium:started",
        "entitlements_changed:alice:premium:revoked",
        "entitlements_changed:alice:premium:started",
        "entitlements_changed:alice:premium:ended",
    ]


def test_the_cli_grants_and_revokes_plans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    app = create_app(recorder_settings(tmp_path / "data"), plugins=RECORDER)
    with TestClient(app):
        alice = sign_up(app, "alice")
        assert cli(["grant", "alice", "premium", "--days", "30", "--data-dir", data]) == 0
        assert "granted premium to @alice until" in capsys.readouterr().err
        app.state.kernel.entitlements.forget(app.state.kernel.user("alice").id)
        assert alice.get("/api/me").json()["plans"] == ["free", "premium"]
        assert cli(["revoke", "alice", "premium", "--data-dir", data]) == 0
        app.state.kernel.entitlements.forget(app.state.kernel.user("alice").id)
        assert alice.get("/api/me").json()["plans"] == ["free"]
        assert cli(["revoke", "alice", "premium", "--data-dir", data]) == 1
        assert cli(["grant", "nobody", "premium", "--data-dir", data]) == 1
        assert cli(["grant", "alice", "gold", "--data-dir", data]) == 1
        assert "no plan named 'gold'" in capsys.readouterr().err


def test_another_process_s_grant_shows_within_the_refresh_interval(tmp_path: Path) -> None:
    app = create_app(recorder_settings(tmp_path / "data", entitlements={"refresh_seconds": 0.5}), plugins=RECORDER)
    with TestClient(app):
        alice = sign_up(app, "alice")
        assert alice.get("/api/me").json()["plans"] == ["free"]
        assert cli(["grant", "alice", "premium", "--data-dir", str(tmp_path / "data")]) == 0
        time.sleep(0.7)
        assert alice.get("/api/me").json()["plans"] == ["free", "premium"]
