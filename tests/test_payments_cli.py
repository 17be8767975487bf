"""``everything payments audit``: the ledger's invariants checked from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from kernel import create_app
from kernel.cli import main as cli
from plugins.payments.service import PAYMENTS
from tests.conftest import make_settings, running, sign_up


def deployment_with_a_transfer(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    app = create_app(make_settings(data))
    with running(app):
        alice, _ = sign_up(app, "alice"), sign_up(app, "bob_b")
        kernel = app.state.kernel
        PAYMENTS.of(kernel).ledger.credit(kernel.user("alice").id, 5_000, "topup")
        assert alice.post("/api/payments/transfers", json={"to": "bob_b", "amount": 1_000}).status_code == 201
    return data


def test_the_audit_passes_on_sound_books(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = deployment_with_a_transfer(tmp_path)
    assert cli(["payments", "audit", "--data-dir", str(data)]) == 0
    assert "the ledger is sound" in capsys.readouterr().err


def test_the_audit_fails_and_names_each_breach(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = deployment_with_a_transfer(tmp_path)
    app = create_app(make_settings(data))
    with app.state.kernel.db.engine.begin() as connection:
        connection.execute(text("UPDATE payments_entries SET amount = amount + 5 WHERE id = (SELECT MAX(id) FROM payments_entries)"))
    assert cli(["payments", "audit", "--data-dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert "sums to 5, not 0" in err and "the ledger sums to 5, not 0" in err


def test_an_unknown_plugin_command_is_refused_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["nosuchplugin", "audit", "--data-dir", str(tmp_path / "data")]) == 2
    assert "neither a command nor a running plugin" in capsys.readouterr().err
