"""The operator's pages: who may see them, and every form doing what the admin API does, audited."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kernel import admin, audit, create_app
from tests.conftest import UserClient, make_settings, sign_up

HTML = {"accept": "text/html"}


def csrf_of(page: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page)
    assert match, "the page carries its CSRF token"
    assert f'name="csrf_token" value="{match.group(1)}"' in page or "<form" not in page
    return match.group(1)


def make_operator(app: Starlette, username: str) -> None:
    kernel = app.state.kernel
    admin.set_admin(kernel, kernel.user(username), True, "test")


def submit(client: TestClient, page: str, action: str, fields: dict[str, str] | None = None) -> httpx.Response:
    """Post a form of the admin page ``page`` the way a browser would, with that page's token; no redirect followed."""
    token = csrf_of(client.get(page, headers=HTML).text)
    return client.post(action, data={**(fields or {}), "csrf_token": token}, headers=HTML, follow_redirects=False)


def plugin_states(client: TestClient) -> dict[str, str]:
    response = client.get("/api/admin/plugins")
    assert response.status_code == 200, response.text
    return {plugin["name"]: plugin["state"] for plugin in response.json()["results"]}


def rollout_of(client: TestClient, key: str) -> int:
    features = {feature["key"]: feature for feature in client.get("/api/admin/features").json()["results"]}
    return features[key]["rollout_percent"]


def audit_entries(client: TestClient) -> list[dict[str, Any]]:
    return client.get("/api/admin/audit").json()["results"]


def row_of(page: str, row_id: str) -> str:
    """The HTML of one table row by its id."""
    match = re.search(rf'<tr id="{re.escape(row_id)}".*?</tr>', page, re.DOTALL)
    assert match, f"no row {row_id}"
    return match.group(0)


def alert_of(page: str) -> str:
    match = re.search(r'<p class="error admin-error" role="alert">(.*?)</p>', page, re.DOTALL)
    assert match, "the page shows the error"
    return html.unescape(match.group(1))


@pytest.fixture
def operator(app: Starlette, alice: UserClient) -> UserClient:
    make_operator(app, "alice")
    return alice


# Who may see the pages ---------------------------------------------------------------------------


ADMIN_PAGES = ["/admin", "/admin/users", "/admin/users?q=bob", "/admin/users/alice", "/admin/audit"]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_signed_out_visitors_are_sent_to_log_in_and_back(client: TestClient, path: str) -> None:
    response = client.get(path, headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    location = httpx.URL(response.headers["location"])
    assert location.path == "/login"
    assert location.params["next"] == path


def test_log_in_page_brings_the_operator_back_to_the_admin_page(app: Starlette, operator: UserClient) -> None:
    browser = TestClient(app)
    assert browser.get("/admin", headers=HTML, follow_redirects=False).headers["location"] == "/login?next=/admin"
    token = csrf_of(browser.get("/login?next=/admin", headers=HTML).text)
    response = browser.post(
        "/login",
        data={"username": "alice", "password": "correct horse battery", "csrf_token": token, "next": "/admin"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/admin"
    assert browser.get("/admin", headers=HTML).status_code == 200


def test_signed_out_form_posts_change_nothing(app: Starlette, client: TestClient) -> None:
    token = csrf_of(client.get("/login", headers=HTML).text)
    response = client.post("/admin/plugins/calls/disable", data={"csrf_token": token}, headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/admin"
    assert app.state.kernel.plugins.records["calls"].state == "enabled"


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_users_who_are_not_operators_get_the_403_page(alice: UserClient, path: str) -> None:
    response = alice.get(path, headers=HTML)
    assert response.status_code == 403
    assert "Not allowed" in response.text
    assert "Only operators may do this." in response.text


def test_forms_from_users_who_are_not_operators_are_refused(app: Starlette, operator: UserClient, bob: UserClient) -> None:
    token = csrf_of(bob.get("/settings", headers=HTML).text)
    posts = {
        "/admin/plugins/calls/disable": {},
        "/admin/features/kernel.verified/rollout": {"percent": "0"},
        "/admin/users/bob_b/grant": {"plan": "premium"},
        "/admin/users/alice/revoke": {"plan": "premium"},
        "/admin/users/bob_b/admin": {"value": "on"},
    }
    for action, fields in posts.items():
        response = bob.post(action, data={**fields, "csrf_token": token}, headers=HTML)
        assert response.status_code == 403, action
        assert "Only operators may do this." in response.text
    assert plugin_states(operator)["calls"] == "enabled"
    assert rollout_of(operator, "kernel.verified") == 100
    assert bob.get("/api/users/bob_b").json()["verified"] is False
    assert bob.get("/admin", headers=HTML).status_code == 403


def test_forms_without_the_csrf_token_are_refused(operator: UserClient) -> None:
    response = operator.post("/admin/plugins/calls/disable", data={}, headers=HTML)
    assert response.status_code == 403
    assert "did not come from this site" in response.text
    response = operator.post("/admin/plugins/calls/disable", data={"csrf_token": "0" * 64}, headers=HTML)
    assert response.status_code == 403
    assert plugin_states(operator)["calls"] == "enabled"


# Plugins --------------------------------------------------------------------------------------------


@pytest.fixture
def mixed_app(tmp_path: Path, database_url: str | None) -> Iterator[Starlette]:
    """The bundled plugins with trading left out of ``plugins.enabled``, plus one that fails at start-up, one with features and one that needs it."""
    enabled = ["calls", "feed", "payments", "spaces", "failing_startup", "recorder", "needs_recorder"]
    settings = make_settings(tmp_path / "data", database_url, plugins={"enabled": enabled})
    plugins = {name: f"tests.plugin_fixtures.{name}" for name in ("failing_startup", "recorder", "needs_recorder")}
    application = create_app(settings, plugins=plugins)
    with TestClient(application):
        yield application


def test_operator_sees_every_plugin_with_its_state_and_switch(mixed_app: Starlette) -> None:
    operator = sign_up(mixed_app, "carol")
    make_operator(mixed_app, "carol")
    page = operator.get("/admin", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert '<link rel="stylesheet" href="/static/kernel/admin.css">' in text

    calls = row_of(text, "plugin-calls")
    assert 'data-state="enabled"' in calls and ">Calls<" in calls and "1.0.0" in calls
    assert 'action="/admin/plugins/calls/disable"' in calls

    recorder = row_of(text, "plugin-recorder")
    assert "1.2.3" in recorder and 'action="/admin/plugins/recorder/disable"' in recorder

    trading = row_of(text, "plugin-trading")
    assert 'data-state="disabled"' in trading and "not in plugins.enabled" in trading
    assert "<form" not in trading

    failed = row_of(text, "plugin-failing_startup")
    assert 'data-state="failed"' in failed
    assert "start-up raised ConnectionError: could not reach the upstream service" in failed
    assert "<form" not in failed

    shout = row_of(text, "feature-recorder.shout")
    assert "Shouting" in shout and "recorder" in shout and "premium" in shout
    assert 'action="/admin/features/recorder.shout/rollout"' in shout and 'value="100"' in shout


def test_disabling_and_enabling_a_plugin_from_the_page(operator: UserClient) -> None:
    response = submit(operator, "/admin", "/admin/plugins/calls/disable")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin?saved=plugin-disabled&what=calls"
    assert plugin_states(operator)["calls"] == "off"

    page = operator.get(response.headers["location"], headers=HTML).text
    assert "Plugin calls switched off." in page
    row = row_of(page, "plugin-calls")
    assert 'data-state="off"' in row and "switched off by an operator" in row
    assert 'action="/admin/plugins/calls/enable"' in row

    response = submit(operator, "/admin", "/admin/plugins/calls/enable")
    assert response.headers["location"] == "/admin?saved=plugin-enabled&what=calls"
    assert plugin_states(operator)["calls"] == "enabled"
    assert "Plugin calls switched on." in operator.get(response.headers["location"], headers=HTML).text

    entries = audit_entries(operator)
    assert [(entry["actor"], entry["action"], entry["target"]) for entry in entries[:2]] == [
        ("@alice", "plugin.enable", "calls"),
        ("@alice", "plugin.disable", "calls"),
    ]


def test_switching_on_a_plugin_whose_requirement_is_off_warns(mixed_app: Starlette) -> None:
    operator = sign_up(mixed_app, "carol")
    make_operator(mixed_app, "carol")
    submit(operator, "/admin", "/admin/plugins/recorder/disable")
    states = plugin_states(operator)
    assert states["recorder"] == "off" and states["needs_recorder"] == "off"
    row = row_of(operator.get("/admin", headers=HTML).text, "plugin-needs_recorder")
    assert "requires plugin &#39;recorder&#39;, which is off" in row

    response = submit(operator, "/admin", "/admin/plugins/needs_recorder/enable")
    page = operator.get(response.headers["location"], headers=HTML).text
    assert '<p class="notice warning" role="status">Plugin needs_recorder switched on. It is off: requires plugin' in page

    submit(operator, "/admin", "/admin/plugins/recorder/enable")
    assert plugin_states(operator)["needs_recorder"] == "enabled"


def test_plugins_that_cannot_be_switched_show_the_reason_in_the_page(mixed_app: Starlette) -> None:
    operator = sign_up(mixed_app, "carol")
    make_operator(mixed_app, "carol")
    response = submit(operator, "/admin", "/admin/plugins/trading/enable")
    assert response.status_code == 409
    assert "is not in plugins.enabled" in alert_of(response.text)
    assert 'id="plugin-calls"' in response.text, "the overview is shown again"
    assert plugin_states(operator)["trading"] == "disabled"

    response = submit(operator, "/admin", "/admin/plugins/failing_startup/enable")
    assert response.status_code == 409
    assert "could not reach the upstream service" in alert_of(response.text)

    response = submit(operator, "/admin", "/admin/plugins/nonesuch/disable")
    assert response.status_code == 404
    assert "There is no plugin 'nonesuch'." in alert_of(response.text)

    response = submit(operator, "/admin", "/admin/plugins/calls/explode")
    assert response.status_code == 404
    assert plugin_states(operator)["calls"] == "enabled"


def test_a_notice_never_names_something_that_does_not_exist(operator: UserClient) -> None:
    page = operator.get("/admin?saved=plugin-disabled&what=<b>payments</b>", headers=HTML).text
    assert '<p class="notice" role="status">Saved.</p>' in page
    assert "<b>payments" not in page


def test_a_notice_about_the_wrong_kind_of_thing_is_just_saved(operator: UserClient) -> None:
    for query in ("saved=plugin-enabled&what=kernel.verified", "saved=rollout&what=calls", "saved=granted&what=premium"):
        page = operator.get(f"/admin?{query}", headers=HTML)
        assert page.status_code == 200
        assert '<p class="notice" role="status">Saved.</p>' in page.text


# Feature rollouts ---------------------------------------------------------------------------------------


def test_rollout_form_sets_the_percent(operator: UserClient) -> None:
    response = submit(operator, "/admin", "/admin/features/kernel.verified/rollout", {"percent": "25"})
    assert response.status_code == 303
    assert rollout_of(operator, "kernel.verified") == 25
    page = operator.get(response.headers["location"], headers=HTML).text
    assert "kernel.verified now reaches 25%" in page
    assert 'value="25"' in row_of(page, "feature-kernel.verified")
    entry = audit_entries(operator)[0]
    assert entry["actor"] == "@alice" and entry["target"] == "kernel.verified"


@pytest.mark.parametrize(
    ("percent", "message"),
    [
        ("150", "percent: Input should be less than or equal to 100"),
        ("-1", "percent: Input should be greater than or equal to 0"),
        ("abc", "percent: Input should be a valid integer"),
        ("12.5", "percent: Input should be a valid integer"),
        ("", "percent: Input should be a valid integer"),
    ],
)
def test_bad_rollout_percent_is_shown_in_the_page_and_changes_nothing(operator: UserClient, percent: str, message: str) -> None:
    submit(operator, "/admin", "/admin/features/kernel.verified/rollout", {"percent": "40"})
    before = len(audit_entries(operator))
    response = submit(operator, "/admin", "/admin/features/kernel.verified/rollout", {"percent": percent})
    assert response.status_code == 422
    assert alert_of(response.text).startswith(message)
    row = row_of(response.text, "feature-kernel.verified")
    assert f'value="{html.escape(percent)}"' in row, "the input is kept"
    assert 'aria-invalid="true"' in row
    assert rollout_of(operator, "kernel.verified") == 40
    assert len(audit_entries(operator)) == before


def test_rollout_of_an_unknown_feature_is_shown_as_not_found(operator: UserClient) -> None:
    response = submit(operator, "/admin", "/admin/features/nope.nothing/rollout", {"percent": "10"})
    assert response.status_code == 404
    assert "There is no feature 'nope.nothing'." in alert_of(response.text)


# Users, plans, grants -----------------------------------------------------------------------------------


def test_users_page_searches_and_shows_plans_operators_and_badges(app: Starlette, operator: UserClient, bob: UserClient) -> None:
    page = operator.get("/admin/users", headers=HTML)
    assert page.status_code == 200
    everyone = page.text  # without a search: every account, newest first
    assert everyone.index('href="/admin/users/bob_b"') < everyone.index('href="/admin/users/alice"')

    page = operator.get("/admin/users?q=bob", headers=HTML).text
    assert "@bob_b" in page and 'href="/admin/users/bob_b"' in page
    assert 'href="/admin/users/alice"' not in page
    assert 'class="verified"' not in page
    assert "operator</span>" not in page

    submit(operator, "/admin/users/bob_b", "/admin/users/bob_b/grant", {"plan": "premium"})
    page = operator.get("/admin/users?q=bob", headers=HTML).text
    assert 'class="verified"' in page
    assert ">premium</span>" in page

    page = operator.get("/admin/users?q=ali", headers=HTML).text
    assert 'href="/admin/users/alice"' in page and 'class="pill operator">operator</span>' in page

    page = operator.get("/admin/users?q=zzz", headers=HTML).text
    assert "No one matches “zzz”" in page


def test_users_page_pages_with_a_next_link(app: Starlette, operator: UserClient) -> None:
    identity = app.state.kernel.identity
    for number in range(25):
        identity.create_user(f"pager{number:02d}", "unused-hash", f"Pager {number}")
    first = operator.get("/admin/users?q=pager", headers=HTML).text
    found = re.findall(r'href="/admin/users/(pager\d\d)"', first)
    assert len(found) == 20
    match = re.search(r'<a class="button" rel="next" href="([^"]+)">Next</a>', first)
    assert match
    second = operator.get(html.unescape(match.group(1)), headers=HTML)
    assert second.status_code == 200
    rest = re.findall(r'href="/admin/users/(pager\d\d)"', second.text)
    assert sorted(found + rest) == [f"pager{number:02d}" for number in range(25)]
    assert 'rel="next"' not in second.text


def test_user_page_shows_plans_grants_and_forms(operator: UserClient, bob: UserClient) -> None:
    page = operator.get("/admin/users/BOB_B", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert "@bob_b" in text and "Bob Builder" in text
    assert "<code>free</code>" in text
    assert '<option value="premium"' in text and '<option value="free"' not in text
    for source in ("operator", "trial", "subscription"):
        assert f'<option value="{source}"' in text
    assert 'action="/admin/users/bob_b/revoke"' not in text, "nothing to revoke but free"
    assert "Make operator" in text
    assert operator.get("/admin/users/nobody_here", headers=HTML).status_code == 404


def test_granting_premium_from_the_page_gives_the_badge_and_is_audited(operator: UserClient, bob: UserClient) -> None:
    assert bob.get("/api/users/bob_b").json()["verified"] is False
    response = submit(
        operator,
        "/admin/users/bob_b",
        "/admin/users/bob_b/grant",
        {"plan": "premium", "days": "", "source": "trial", "reference": "ticket 42"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/users/bob_b?saved=granted&what=premium"
    assert bob.get("/api/users/bob_b").json()["verified"] is True

    page = operator.get(response.headers["location"], headers=HTML).text
    assert "Plan premium granted." in page
    assert 'class="verified"' in page
    grant_row = re.search(r'<tr data-grant="\d+">.*?</tr>', page, re.DOTALL)
    assert grant_row
    for cell in ("premium", "trial", "no end", "active", "ticket 42"):
        assert cell in grant_row.group(0)
    assert 'action="/admin/users/bob_b/revoke"' in page

    entry = audit_entries(operator)[0]
    assert (entry["actor"], entry["action"], entry["target"]) == ("@alice", "grant.create", "@bob_b")
    assert entry["detail"].startswith("premium (trial)")
    audit_page = operator.get("/admin/audit", headers=HTML).text
    assert "grant.create" in audit_page and '<a href="/admin/users/alice">@alice</a>' in audit_page


def test_grant_for_some_days_has_an_end(operator: UserClient, bob: UserClient) -> None:
    submit(operator, "/admin/users/bob_b", "/admin/users/bob_b/grant", {"plan": "premium", "days": "30", "source": "operator"})
    grants = operator.get("/api/admin/users/bob_b").json()["grants"]
    assert len(grants) == 1 and grants[0]["ends_at"] is not None and grants[0]["status"] == "active"


def test_revoking_from_the_page_removes_the_plan_and_the_badge(operator: UserClient, bob: UserClient) -> None:
    submit(operator, "/admin/users/bob_b", "/admin/users/bob_b/grant", {"plan": "premium"})
    assert bob.get("/api/users/bob_b").json()["verified"] is True
    response = submit(operator, "/admin/users/bob_b", "/admin/users/bob_b/revoke", {"plan": "premium"})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/users/bob_b?saved=revoked&what=premium"
    assert bob.get("/api/users/bob_b").json()["verified"] is False
    assert operator.get("/api/admin/users/bob_b").json()["plans"] == ["free"]

    page = operator.get(response.headers["location"], headers=HTML).text
    assert "Plan premium revoked." in page
    assert ">revoked</span>" in page
    assert 'action="/admin/users/bob_b/revoke"' not in page
    entry = audit_entries(operator)[0]
    assert (entry["actor"], entry["action"], entry["target"]) == ("@alice", "grant.revoke", "@bob_b")

    response = submit(operator, "/admin/users/bob_b", "/admin/users/bob_b/revoke", {"plan": "premium"})
    assert response.headers["location"] == "/admin/users/bob_b?saved=not-held&what=premium"
    assert "There was no current grant of premium to revoke." in operator.get(response.headers["location"], headers=HTML).text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"plan": "premium", "days": "abc"}, "days: Input should be a valid number"),
        ({"plan": "premium", "days": "0"}, "days: Input should be greater than 0"),
        ({"plan": "premium", "days": "99999"}, "days: Input should be less than or equal to 36600"),
        ({"plan": "premium", "source": "gift"}, "source: String should match pattern"),
        ({"plan": "free"}, "plan: no plan named 'free' can be granted"),
        ({"plan": "platinum"}, "plan: no plan named 'platinum' can be granted"),
        ({"plan": ""}, "plan: String should have at least 1 character"),
        ({"plan": "premium", "reference": "x" * 201}, "reference: String should have at most 200 characters"),
    ],
)
def test_bad_grant_form_is_shown_again_with_the_input_kept(
    operator: UserClient, bob: UserClient, fields: dict[str, str], message: str
) -> None:
    response = submit(operator, "/admin/users/bob_b", "/admin/users/bob_b/grant", {"reference": "kept ref", **fields})
    assert response.status_code == 422
    assert alert_of(response.text).startswith(message)
    assert '<p class="field-error">' in response.text
    if "reference" not in fields:
        assert 'value="kept ref"' in response.text
    if fields.get("days"):
        assert f'value="{fields["days"]}"' in response.text
    assert operator.get("/api/admin/users/bob_b").json()["grants"] == []
    assert bob.get("/api/users/bob_b").json()["verified"] is False


def test_bad_revoke_form_is_shown_again(operator: UserClient, bob: UserClient) -> None:
    response = submit(operator, "/admin/users/bob_b", "/admin/users/bob_b/revoke", {"plan": "platinum"})
    assert response.status_code == 422
    assert "plan: no plan named 'platinum'" in alert_of(response.text)
    response = submit(operator, "/admin/users/bob_b", "/admin/users/bob_b/revoke", {})
    assert response.status_code == 422
    assert "plan: This field is required" in alert_of(response.text)


# Operator rights ------------------------------------------------------------------------------------------


def test_making_and_removing_an_operator_from_the_page(operator: UserClient, bob: UserClient) -> None:
    assert bob.get("/admin", headers=HTML).status_code == 403
    response = submit(operator, "/admin/users/bob_b", "/admin/users/bob_b/admin", {"value": "on"})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/users/bob_b?saved=operator-on"
    page = operator.get(response.headers["location"], headers=HTML).text
    assert "@bob_b is now an operator." in page and "Remove operator" in page
    assert bob.get("/admin", headers=HTML).status_code == 200
    assert operator.get("/api/admin/users/bob_b").json()["is_admin"] is True

    response = submit(operator, "/admin/users/bob_b", "/admin/users/bob_b/admin", {"value": "off"})
    assert response.headers["location"] == "/admin/users/bob_b?saved=operator-off"
    assert "@bob_b is no longer an operator." in operator.get(response.headers["location"], headers=HTML).text
    assert bob.get("/admin", headers=HTML).status_code == 403

    actions = [(entry["actor"], entry["action"], entry["target"]) for entry in audit_entries(operator)[:2]]
    assert actions == [("@alice", "user.remove_admin", "@bob_b"), ("@alice", "user.set_admin", "@bob_b")]


def test_an_operator_cannot_remove_their_own_rights(operator: UserClient) -> None:
    page = operator.get("/admin/users/alice", headers=HTML).text
    assert "You cannot remove your own operator rights" in page
    assert "Remove operator" not in page
    response = submit(operator, "/admin/users/alice", "/admin/users/alice/admin", {"value": "off"})
    assert response.status_code == 409
    assert "Ask another operator" in alert_of(response.text)
    assert operator.get("/admin", headers=HTML).status_code == 200


def test_operator_form_needs_on_or_off(operator: UserClient, bob: UserClient) -> None:
    response = submit(operator, "/admin/users/bob_b", "/admin/users/bob_b/admin", {"value": "yes"})
    assert response.status_code == 422
    assert "value: must be on or off" in alert_of(response.text)
    assert bob.get("/admin", headers=HTML).status_code == 403


# Audit log --------------------------------------------------------------------------------------------------


def test_overview_shows_the_ten_latest_audit_entries(app: Starlette, operator: UserClient) -> None:
    def write(conn: Connection) -> None:
        for number in range(12):
            audit.record(conn, "cli", "test.entry", f"target-{number:02d}")

    app.state.kernel.db.write(write)
    page = operator.get("/admin", headers=HTML).text
    shown = re.findall(r"target-(\d\d)", page)
    assert shown == [f"{number:02d}" for number in range(11, 1, -1)]
    assert 'href="/admin/audit"' in page and 'href="/admin/users"' in page


def test_audit_page_lists_newest_first_and_pages(app: Starlette, operator: UserClient) -> None:
    def write(conn: Connection) -> None:
        for number in range(60):
            audit.record(conn, "cli", "test.entry", f"target-{number:02d}", f"detail {number}")

    app.state.kernel.db.write(write)
    first = operator.get("/admin/audit", headers=HTML)
    assert first.status_code == 200
    shown = re.findall(r"target-(\d\d)", first.text)
    assert shown[:2] == ["59", "58"] and len(shown) == 50
    assert '<td data-label="Who">cli</td>' in first.text
    match = re.search(r'rel="next" href="([^"]+)">Older</a>', first.text)
    assert match
    second = operator.get(html.unescape(match.group(1)), headers=HTML)
    older = re.findall(r"target-(\d\d)", second.text)
    assert older == [f"{number:02d}" for number in range(9, -1, -1)]
    assert '<a href="/admin/users/alice">@alice</a>' in second.text, "the oldest line: alice made operator by the test"
    assert 'rel="next"' not in second.text

    bad = operator.get("/admin/audit?cursor=garbage", headers=HTML)
    assert bad.status_code == 422
