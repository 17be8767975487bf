"""The operators' API and CLI: who may use them, and the audit log of every switch and grant change."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette

from kernel import create_app
from kernel.cli import main as cli
from tests.conftest import assert_error, make_operator, make_settings, running, sign_up


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/admin/plugins"),
        ("GET", "/api/admin/features"),
        ("GET", "/api/admin/users"),
        ("GET", "/api/admin/users/alice"),
        ("POST", "/api/admin/users/alice/grants"),
        ("DELETE", "/api/admin/users/alice/plans/premium"),
        ("PUT", "/api/admin/users/alice/admin"),
        ("PUT", "/api/admin/features/kernel.verified/rollout"),
        ("GET", "/api/admin/audit"),
    ],
)
def test_only_operators_reach_the_admin_api(app: Starlette, method: str, path: str) -> None:
    alice = sign_up(app, "alice")
    assert_error(alice.request(method, path, json={"plan": "premium", "percent": 5}), 403, "admin_required")
    assert alice.get("/api/me").json()["plans"] == ["free"]


def test_every_switch_and_grant_change_is_audited_with_who_when_and_what(app: Starlette) -> None:
    operator = make_operator(app, "oscar")
    sign_up(app, "alice")
    operator.post("/api/admin/plugins/calls/disable")
    operator.post("/api/admin/plugins/calls/enable")
    operator.put("/api/admin/features/kernel.verified/rollout", json={"percent": 25})
    grant_id = operator.post("/api/admin/users/alice/grants", json={"plan": "premium", "days": 30}).json()["id"]
    operator.delete("/api/admin/users/alice/plans/premium")
    operator.put("/api/admin/users/alice/admin")
    entries = operator.get("/api/admin/audit").json()["results"]
    summary = [(entry["actor"], entry["action"], entry["target"]) for entry in entries]
    assert summary[:6] == [
        ("@oscar", "user.set_admin", "@alice"),
        ("@oscar", "grant.revoke", "@alice"),
        ("@oscar", "grant.create", "@alice"),
        ("@oscar", "feature.rollout", "kernel.verified"),
        ("@oscar", "plugin.enable", "calls"),
        ("@oscar", "plugin.disable", "calls"),
    ]
    assert f"#{grant_id}" in entries[2]["detail"] and "premium" in entries[2]["detail"]
    assert entries[3]["detail"] == "100% -> 25%"
    assert all(entry["at"].endswith("Z") for entry in entries)


def test_a_switch_to_the_state_it_already_has_writes_no_audit_line(app: Starlette) -> None:
    operator = make_operator(app, "oscar")
    operator.post("/api/admin/plugins/calls/enable")
    assert [entry for entry in operator.get("/api/admin/audit").json()["results"] if entry["action"].startswith("plugin.")] == []


def test_the_audit_log_pages_newest_first(app: Starlette) -> None:
    operator = make_operator(app, "oscar")
    for percent in range(5):
        operator.put("/api/admin/features/kernel.verified/rollout", json={"percent": percent})
    first = operator.get("/api/admin/audit?limit=3").json()
    second = operator.get(f"/api/admin/audit?limit=3&cursor={first['next_cursor']}").json()
    details = [entry["detail"] for entry in first["results"] + second["results"] if entry["action"] == "feature.rollout"]
    assert details == ["3% -> 4%", "2% -> 3%", "1% -> 2%", "0% -> 1%", "100% -> 0%"]


def test_bad_admin_requests_are_refused_and_change_nothing(app: Starlette) -> None:
    operator = make_operator(app, "oscar")
    assert_error(operator.put("/api/admin/features/kernel.verified/rollout", json={"percent": 101}), 422, "validation_error")
    assert_error(operator.put("/api/admin/features/nope.nothing/rollout", json={"percent": 5}), 404, "not_found")
    assert_error(operator.delete("/api/admin/users/oscar/admin"), 409, "cannot_demote_self")
    assert_error(operator.delete("/api/admin/users/oscar/plans/gold"), 422, "unknown_plan")
    assert [entry["actor"] for entry in operator.get("/api/admin/audit").json()["results"]] == ["test"]  # making oscar an operator


def test_operators_find_users_with_their_plans(app: Starlette) -> None:
    operator = make_operator(app, "oscar")
    sign_up(app, "alice")
    operator.post("/api/admin/users/alice/grants", json={"plan": "premium"})
    found = operator.get("/api/admin/users?q=ali").json()["results"]
    assert found == [{"user": {**found[0]["user"], "username": "alice", "verified": True}, "plans": ["free", "premium"], "is_admin": False}]
    everyone = operator.get("/api/admin/users?limit=1").json()
    assert [row["user"]["username"] for row in everyone["results"]] == ["alice"]  # without q: newest first
    older = operator.get(f"/api/admin/users?limit=1&cursor={everyone['next_cursor']}").json()
    assert [row["user"]["username"] for row in older["results"]] == ["oscar"]


def test_the_cli_makes_an_operator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    app = create_app(make_settings(tmp_path / "data"))
    with running(app):
        alice = sign_up(app, "alice")
        assert cli(["users", "set-admin", "alice", "--data-dir", data]) == 0
        app.state.kernel.identity.forget_user(app.state.kernel.user("alice").id)
        assert alice.get("/api/admin/plugins").status_code == 200
        assert cli(["users", "show", "alice", "--data-dir", data]) == 0
        assert '"is_admin": true' in capsys.readouterr().out
        assert cli(["users", "set-admin", "alice", "--remove", "--data-dir", data]) == 0
        app.state.kernel.identity.forget_user(app.state.kernel.user("alice").id)
        assert_error(alice.get("/api/admin/plugins"), 403, "admin_required")
        entries = [(entry["actor"], entry["action"]) for entry in make_operator(app, "oscar").get("/api/admin/audit").json()["results"]]
        assert [action for actor, action in entries if actor.startswith("cli")] == ["user.remove_admin", "user.set_admin"]
