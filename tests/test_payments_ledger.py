"""The wallet's double-entry ledger and transfers by username: invariants, refusals, idempotency, races."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from starlette.applications import Starlette

from kernel import ApiError, create_app
from tests.conftest import UserClient, assert_error, make_settings, running, sign_up
from tests.payments_kit import balance, fund, ledger_of


@pytest.fixture
def app(tmp_path: Path, database_url: str | None) -> Iterator[Starlette]:
    application = create_app(make_settings(tmp_path / "data", database_url))
    with running(application):
        yield application


@pytest.fixture
def alice(app: Starlette) -> UserClient:
    client = sign_up(app, "alice")
    fund(app, client, 10_000)
    return client


@pytest.fixture
def bob(app: Starlette) -> UserClient:
    return sign_up(app, "bob_b")


def test_a_new_wallet_is_empty_in_the_deployment_s_currency(bob: UserClient) -> None:
    assert bob.get("/api/payments/wallet").json() == {"balance": 0, "currency": "USD", "savings": 0}


def test_a_transfer_moves_money_and_tells_the_recipient(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    with bob.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "kernel.hello"
        response = alice.post("/api/payments/transfers", json={"to": "bob_b", "amount": 1_250, "note": "pizza"})
        assert response.status_code == 201, response.text
        pushed = [ws.receive_json(), ws.receive_json()]
    sent = response.json()
    assert sent["amount"] == -1_250 and sent["kind"] == "transfer" and sent["note"] == "pizza"
    assert sent["counterparty"]["username"] == "bob_b" and sent["currency"] == "USD"
    assert balance(alice) == 8_750 and balance(bob) == 1_250
    received = next(message for message in pushed if message["type"] == "payments.received")
    assert received["amount"] == 1_250 and received["from"]["username"] == "alice" and received["note"] == "pizza"
    notification = bob.get("/api/notifications").json()["results"][0]
    assert notification["kind"] == "payments.received" and notification["text"] == "alice (@alice) sent you $12.50: pizza"
    assert ledger_of(app).audit() == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"to": "bob_b", "amount": 0}, 422, "invalid_amount"),
        ({"to": "bob_b", "amount": -500}, 422, "invalid_amount"),
        ({"to": "bob_b", "amount": "500"}, 422, "validation_error"),
        ({"to": "bob_b", "amount": 5.0}, 422, "validation_error"),
        ({"to": "bob_b", "amount": 10_001}, 409, "insufficient_funds"),
        ({"to": "alice", "amount": 100}, 422, "self_transfer"),
        ({"to": "nobody_here", "amount": 100}, 404, "unknown_user"),
        ({"to": "bob_b"}, 422, "validation_error"),
        ({"to": "bob_b", "amount": 100, "note": "x" * 281}, 422, "validation_error"),
    ],
)
def test_a_refused_transfer_says_why_and_moves_nothing(
    app: Starlette, alice: UserClient, bob: UserClient, body: dict[str, Any], status: int, code: str
) -> None:
    assert_error(alice.post("/api/payments/transfers", json=body), status, code)
    assert balance(alice) == 10_000 and balance(bob) == 0
    assert alice.get("/api/payments/transactions").json()["results"][0]["kind"] == "topup"
    assert ledger_of(app).audit() == []


def test_blocks_refuse_transfers_both_ways(alice: UserClient, bob: UserClient) -> None:
    assert bob.put("/api/blocks/alice").status_code == 204
    assert_error(alice.post("/api/payments/transfers", json={"to": "bob_b", "amount": 100}), 403, "blocked")
    assert bob.delete("/api/blocks/alice").status_code == 204
    assert alice.put("/api/blocks/bob_b").status_code == 204
    assert_error(alice.post("/api/payments/transfers", json={"to": "bob_b", "amount": 100}), 403, "blocked")
    assert balance(alice) == 10_000


def test_the_same_idempotency_key_and_body_give_the_same_transfer_once(alice: UserClient, bob: UserClient) -> None:
    body = {"to": "bob_b", "amount": 300, "note": "rent", "idempotency_key": "k-1"}
    first = alice.post("/api/payments/transfers", json=body)
    again = alice.post("/api/payments/transfers", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert balance(bob) == 300
    assert len(bob.get("/api/notifications").json()["results"]) == 1


def test_the_same_idempotency_key_with_another_body_is_a_conflict(alice: UserClient, bob: UserClient) -> None:
    alice.post("/api/payments/transfers", json={"to": "bob_b", "amount": 300, "idempotency_key": "k-1"})
    reused = alice.post("/api/payments/transfers", json={"to": "bob_b", "amount": 301, "idempotency_key": "k-1"})
    assert_error(reused, 409, "idempotency_conflict")
    assert balance(bob) == 300


def test_twenty_concurrent_transfers_from_a_wallet_that_affords_one_let_exactly_one_through(app: Starlette) -> None:
    kernel = app.state.kernel
    payer = sign_up(app, "payer")
    payees = [sign_up(app, f"payee{number:02d}") for number in range(20)]
    fund(app, payer, 1_000)
    ledger = ledger_of(app)
    payer_id = kernel.user("payer").id
    start = threading.Barrier(20)

    def send(payee: UserClient) -> str:
        start.wait()
        try:
            ledger.transfer(payer_id, kernel.user(payee.username).id, 1_000, "", None)
            return "sent"
        except ApiError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(send, payees))
    assert sorted(outcomes) == ["insufficient_funds"] * 19 + ["sent"]
    assert balance(payer) == 0
    assert ledger.audit() == []


def test_a_reversal_undoes_a_transfer_with_a_new_transaction(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    sent = alice.post("/api/payments/transfers", json={"to": "bob_b", "amount": 700}).json()
    ledger_of(app).reverse(sent["id"], None, "sent by mistake")
    assert balance(alice) == 10_000 and balance(bob) == 0
    history = [item["kind"] for item in alice.get("/api/payments/transactions").json()["results"]]
    assert history == ["reversal", "transfer", "topup"]
    assert ledger_of(app).audit() == []


def test_the_audit_names_a_balance_that_disagrees_with_its_entries(app: Starlette, alice: UserClient) -> None:
    with app.state.kernel.db.engine.begin() as connection:
        connection.execute(text("UPDATE payments_accounts SET balance = balance + 1 WHERE user_id IS NOT NULL"))
    assert any("entries sum to 10000" in breach for breach in ledger_of(app).audit())


def test_history_is_newest_first_with_a_cursor(alice: UserClient, bob: UserClient) -> None:
    for amount in (100, 200, 300):
        alice.post("/api/payments/transfers", json={"to": "bob_b", "amount": amount})
    first = bob.get("/api/payments/transactions?limit=2").json()
    assert [item["amount"] for item in first["results"]] == [300, 200]
    rest = bob.get(f"/api/payments/transactions?limit=2&cursor={first['next_cursor']}").json()
    assert [item["amount"] for item in rest["results"]] == [100] and rest["next_cursor"] is None


def test_the_wallet_api_needs_a_signed_in_user(app: Starlette) -> None:
    from starlette.testclient import TestClient

    anonymous = TestClient(app)
    assert_error(anonymous.get("/api/payments/wallet"), 401, "unauthorized")
    assert_error(anonymous.post("/api/payments/transfers", json={"to": "x", "amount": 1}), 401, "unauthorized")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(-50, 400), st.sampled_from([None, "a", "b", "c"])),
        max_size=25,
    )
)
def test_random_transfers_with_retries_keep_every_invariant(tmp_path_factory: pytest.TempPathFactory, steps: list) -> None:
    app = create_app(make_settings(tmp_path_factory.mktemp("ledger") / "data"))
    with running(app):
        kernel = app.state.kernel
        people = [kernel.user(sign_up(app, f"user{number}").username) for number in range(3)]
        ledger = ledger_of(app)
        for person in people:
            ledger.credit(person.id, 500, "topup")
        for payer, payee, amount, key in steps:
            try:
                ledger.transfer(people[payer].id, people[payee].id, amount, "", key)
            except (ApiError, ValueError):
                pass  # refused as a whole: an overdraft, a reused key, a bad amount
            assert ledger.audit() == []
        assert sum(sum(ledger.balances(person.id).values()) for person in people) == 1_500
