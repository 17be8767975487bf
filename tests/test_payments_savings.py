"""Savings beside the wallet: moving money in and out, and daily interest paid once per account and day."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kernel import create_app, utcnow
from kernel.cli import main as cli
from plugins.payments.models import transactions
from plugins.payments.savings import Savings
from plugins.payments.service import PAYMENTS
from tests.conftest import UserClient, assert_error, make_settings, running, sign_up
from tests.payments_kit import fund, ledger_of

# 3.65 % a year: a day pays exactly a ten-thousandth of the balance ($1,000.00 earns 10 cents).
RATE = 0.0365


def settings_with_rate(tmp_path: Path, database_url: str | None, rate: float) -> Any:
    return make_settings(tmp_path / "data", database_url, plugins={"payments": {"savings_rate": rate}})


@pytest.fixture
def app(tmp_path: Path, database_url: str | None) -> Iterator[Starlette]:
    application = create_app(settings_with_rate(tmp_path, database_url, RATE))
    with running(application):
        yield application


def savings_of(app: Starlette) -> Savings:
    return PAYMENTS.of(app.state.kernel).savings


def today() -> date:
    return utcnow().date()


def backdate(app: Starlette, days: int) -> None:
    """Make every transaction so far look ``days`` older, as if the money had been there since."""
    with app.state.kernel.db.engine.begin() as connection:
        for row in connection.execute(select(transactions.c.id, transactions.c.created_at)).all():
            moved = transactions.update().where(transactions.c.id == row.id).values(created_at=row.created_at - timedelta(days=days))
            connection.execute(moved)


def wallet(client: UserClient) -> dict[str, Any]:
    return client.get("/api/payments/wallet").json()


def saved(client: UserClient) -> dict[str, Any]:
    response = client.get("/api/payments/savings")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def alice(app: Starlette) -> UserClient:
    """$1,500.00 in her wallet."""
    client = sign_up(app, "alice")
    fund(app, client, 150_000)
    return client


def deposit(client: UserClient, amount: int, **extra: Any) -> dict[str, Any]:
    response = client.post("/api/payments/savings/deposit", json={"amount": amount, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_new_savings_are_empty_and_state_the_rate(app: Starlette, alice: UserClient) -> None:
    assert saved(alice) == {"balance": 0, "currency": "USD", "annual_rate": RATE, "interest_earned": 0, "last_accrued_on": None}


def test_a_deposit_moves_money_from_the_wallet_into_savings(app: Starlette, alice: UserClient) -> None:
    moved = deposit(alice, 100_000)
    assert (moved["kind"], moved["amount"], moved["currency"], moved["counterparty"]) == ("savings_deposit", -100_000, "USD", None)
    assert wallet(alice) == {"balance": 50_000, "currency": "USD", "savings": 100_000}
    assert saved(alice)["balance"] == 100_000
    assert alice.get("/api/payments/transactions").json()["results"][0]["id"] == moved["id"]
    assert ledger_of(app).audit() == []


def test_a_withdrawal_moves_money_back_into_the_wallet(app: Starlette, alice: UserClient) -> None:
    deposit(alice, 100_000)
    response = alice.post("/api/payments/savings/withdraw", json={"amount": 30_000})
    assert response.status_code == 201, response.text
    assert (response.json()["kind"], response.json()["amount"]) == ("savings_withdraw", 30_000)
    assert wallet(alice) == {"balance": 80_000, "currency": "USD", "savings": 70_000}
    assert ledger_of(app).audit() == []


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("deposit", {"amount": 150_001}, 409, "insufficient_funds"),
        ("withdraw", {"amount": 10_001}, 409, "insufficient_funds"),
        ("deposit", {"amount": 0}, 422, "invalid_amount"),
        ("withdraw", {"amount": -5}, 422, "invalid_amount"),
        ("deposit", {"amount": "500"}, 422, "validation_error"),
        ("deposit", {"amount": 5.0}, 422, "validation_error"),
        ("withdraw", {}, 422, "validation_error"),
        ("deposit", {"amount": 5, "to": "bob"}, 422, "validation_error"),
    ],
)
def test_a_refused_move_says_why_and_moves_nothing(
    app: Starlette, alice: UserClient, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    deposit(alice, 10_000)
    assert_error(alice.post(f"/api/payments/savings/{path}", json=body), status, code)
    assert wallet(alice) == {"balance": 140_000, "currency": "USD", "savings": 10_000}
    assert ledger_of(app).audit() == []


def test_an_overdrawn_withdrawal_names_the_savings(alice: UserClient) -> None:
    error = assert_error(alice.post("/api/payments/savings/withdraw", json={"amount": 1}), 409, "insufficient_funds")
    assert "savings" in error["message"]


def test_the_same_idempotency_key_moves_money_once(alice: UserClient) -> None:
    first = deposit(alice, 1_000, idempotency_key="save-1")
    again = alice.post("/api/payments/savings/deposit", json={"amount": 1_000, "idempotency_key": "save-1"})
    assert again.status_code == 200 and again.json() == first
    assert saved(alice)["balance"] == 1_000


def test_an_idempotency_key_reused_for_another_move_is_a_conflict(app: Starlette, alice: UserClient) -> None:
    sign_up(app, "bob_b")
    deposit(alice, 1_000, idempotency_key="k-1")
    assert_error(alice.post("/api/payments/savings/withdraw", json={"amount": 1_000, "idempotency_key": "k-1"}), 409, "idempotency_conflict")
    assert_error(alice.post("/api/payments/transfers", json={"to": "bob_b", "amount": 1_000, "idempotency_key": "k-1"}), 409, "idempotency_conflict")
    assert wallet(alice) == {"balance": 149_000, "currency": "USD", "savings": 1_000}


def test_interest_is_paid_into_savings_and_shown_to_the_saver(app: Starlette, alice: UserClient) -> None:
    deposit(alice, 100_000)
    assert savings_of(app).accrue_interest(today()) == 1
    assert saved(alice) == {
        "balance": 100_010,
        "currency": "USD",
        "annual_rate": RATE,
        "interest_earned": 10,
        "last_accrued_on": today().isoformat(),
    }
    latest = alice.get("/api/payments/transactions").json()["results"][0]
    assert (latest["kind"], latest["amount"], latest["counterparty"]) == ("interest", 10, None)
    assert wallet(alice)["balance"] == 50_000
    assert ledger_of(app).audit() == []


def test_interest_run_twice_a_day_posts_once(app: Starlette, alice: UserClient) -> None:
    deposit(alice, 100_000)
    assert [savings_of(app).accrue_interest(today()) for _ in range(2)] == [1, 0]
    assert saved(alice)["balance"] == 100_010
    kinds = [item["kind"] for item in alice.get("/api/payments/transactions").json()["results"]]
    assert kinds.count("interest") == 1
    assert ledger_of(app).audit() == []


def test_concurrent_interest_runs_pay_a_day_once(app: Starlette, alice: UserClient) -> None:
    deposit(alice, 100_000)
    start = threading.Barrier(6)

    def run(_: int) -> int:
        start.wait()
        return savings_of(app).accrue_interest(today())

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert sum(pool.map(run, range(6))) == 1
    assert saved(alice)["balance"] == 100_010
    assert ledger_of(app).audit() == []


def test_interest_compounds_day_after_day(app: Starlette, alice: UserClient) -> None:
    deposit(alice, 100_000)
    backdate(app, 2)
    for offset in (2, 1, 0):
        assert savings_of(app).accrue_interest(today() - timedelta(days=offset)) == 1
    # 100,000 earns 10.0; 100,010 earns 10.001; 100,020 earns 10.002: the fractions are carried, not yet a cent.
    assert saved(alice)["balance"] == 100_030 and saved(alice)["interest_earned"] == 30


def test_a_sub_cent_remainder_is_carried_into_the_next_day(app: Starlette, alice: UserClient) -> None:
    deposit(alice, 2_500)  # a quarter of a cent a day
    backdate(app, 3)
    paid = [savings_of(app).accrue_interest(today() - timedelta(days=offset)) for offset in (3, 2, 1, 0)]
    assert paid == [1, 1, 1, 1]  # every day accrued...
    assert saved(alice)["balance"] == 2_501  # ...and the fourth quarter made a cent
    kinds = [item["kind"] for item in alice.get("/api/payments/transactions").json()["results"]]
    assert kinds.count("interest") == 1
    assert ledger_of(app).audit() == []


def test_a_day_s_interest_is_on_its_closing_balance(app: Starlette, alice: UserClient) -> None:
    deposit(alice, 100_000)
    backdate(app, 1)
    deposit(alice, 50_000)  # today: not part of yesterday's closing balance
    assert savings_of(app).accrue_interest(today() - timedelta(days=1)) == 1
    assert saved(alice)["balance"] == 150_010


def test_an_empty_savings_account_earns_nothing(app: Starlette, alice: UserClient) -> None:
    deposit(alice, 1_000)
    alice.post("/api/payments/savings/withdraw", json={"amount": 1_000})
    assert savings_of(app).accrue_interest(today()) == 0
    assert saved(alice)["last_accrued_on"] is None


def test_a_zero_rate_pays_no_interest(tmp_path: Path, database_url: str | None) -> None:
    application = create_app(settings_with_rate(tmp_path, database_url, 0.0))
    with running(application):
        saver = sign_up(application, "saver")
        fund(application, saver, 100_000)
        deposit(saver, 100_000)
        assert savings_of(application).accrue_interest(today()) == 0
        assert saved(saver)["balance"] == 100_000 and saved(saver)["annual_rate"] == 0.0


def test_a_day_not_yet_begun_cannot_be_accrued(app: Starlette) -> None:
    with pytest.raises(ValueError, match="has not begun"):
        savings_of(app).accrue_interest(today() + timedelta(days=1))


def test_the_job_runs_from_startup_and_accrues_yesterday(app: Starlette, alice: UserClient) -> None:
    job = PAYMENTS.of(app.state.kernel).interest_job
    assert job.running
    deposit(alice, 100_000)
    backdate(app, 1)
    assert app.state.test_portal.call(job.tick) == 1
    assert app.state.test_portal.call(job.tick) == 0
    assert saved(alice)["last_accrued_on"] == (today() - timedelta(days=1)).isoformat()


def test_the_job_catches_up_on_missed_days(app: Starlette, alice: UserClient) -> None:
    deposit(alice, 100_000)
    backdate(app, 5)
    assert savings_of(app).accrue_interest(today() - timedelta(days=5)) == 1
    assert savings_of(app).accrue_due(today()) == 4  # the four ended days since, oldest first
    assert saved(alice)["balance"] == 100_050 and saved(alice)["last_accrued_on"] == (today() - timedelta(days=1)).isoformat()


def test_the_job_stops_with_the_app(tmp_path: Path, database_url: str | None) -> None:
    application = create_app(settings_with_rate(tmp_path, database_url, RATE))
    with running(application):
        job = PAYMENTS.of(application.state.kernel).interest_job
        assert job.running
    assert not job.running


def test_the_cli_accrues_a_day_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_with_rate(tmp_path, None, RATE)
    application = create_app(settings)
    with running(application):
        saver = sign_up(application, "saver")
        fund(application, saver, 100_000)
        deposit(saver, 100_000)
    config = tmp_path / "everything.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[plugins.payments]\nsavings_rate = {RATE}\n')
    day = today().isoformat()
    assert cli(["payments", "accrue-interest", "--config", str(config), "--day", day]) == 0
    assert f"accrued interest on 1 savings account(s) for {day}" in capsys.readouterr().err
    assert cli(["payments", "accrue-interest", "--config", str(config), "--day", day]) == 0
    assert "accrued interest on 0 savings account(s)" in capsys.readouterr().err
    assert cli(["payments", "audit", "--config", str(config)]) == 0


def test_the_cli_refuses_a_day_not_yet_begun(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "everything.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[plugins.payments]\nsavings_rate = {RATE}\n')
    tomorrow = (today() + timedelta(days=1)).isoformat()
    assert cli(["payments", "accrue-interest", "--config", str(config), "--day", tomorrow]) == 2
    assert "has not begun" in capsys.readouterr().err


def test_savings_need_a_signed_in_user(app: Starlette) -> None:
    anonymous = TestClient(app)
    assert_error(anonymous.get("/api/payments/savings"), 401, "unauthorized")
    assert_error(anonymous.post("/api/payments/savings/deposit", json={"amount": 1}), 401, "unauthorized")
    assert_error(anonymous.post("/api/payments/savings/withdraw", json={"amount": 1}), 401, "unauthorized")
