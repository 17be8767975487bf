"""Payment requests ("@bob_b requests $12.00"): asking, paying once, declining, cancelling, listing, refusals."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kernel import create_app
from tests.conftest import UserClient, assert_error, make_settings, running, sign_up
from tests.payments_kit import balance, fund, ledger_of


@pytest.fixture
def app(tmp_path: Path, database_url: str | None) -> Iterator[Starlette]:
    application = create_app(make_settings(tmp_path / "data", database_url))
    with running(application):
        yield application


@pytest.fixture
def alice(app: Starlette) -> UserClient:
    """The payer: $100.00 in her wallet."""
    client = sign_up(app, "alice", display_name="Alice Liddell")
    fund(app, client, 10_000)
    return client


@pytest.fixture
def bob(app: Starlette) -> UserClient:
    """The requester, with an empty wallet."""
    return sign_up(app, "bob_b", display_name="Bob Builder")


@pytest.fixture
def carol(app: Starlette) -> UserClient:
    """Neither party."""
    return sign_up(app, "carol")


def ask(requester: UserClient, payer: str, amount: int = 1_200, note: str = "pizza") -> dict[str, Any]:
    response = requester.post("/api/payments/requests", json={"from": payer, "amount": amount, "note": note})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_request_is_pending_and_tells_the_payer(alice: UserClient, bob: UserClient) -> None:
    with alice.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "kernel.hello"
        asked = ask(bob, "alice")
        pushed = [ws.receive_json(), ws.receive_json()]
    assert asked["status"] == "pending" and asked["amount"] == 1_200 and asked["currency"] == "USD" and asked["note"] == "pizza"
    assert asked["requester"]["username"] == "bob_b" and asked["payer"]["username"] == "alice"
    assert asked["transaction_id"] is None and asked["decided_at"] is None and asked["created_at"].endswith("Z")
    realtime = next(message for message in pushed if message["type"] == "payments.requested")
    assert realtime["request"] == asked
    notification = alice.get("/api/notifications").json()["results"][0]
    assert notification["kind"] == "payments.requested" and notification["text"] == "Bob Builder (@bob_b) requests $12.00: pizza"
    assert notification["url"] == "/payments/"
    assert balance(alice) == 10_000 and balance(bob) == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"from": "alice", "amount": 0}, 422, "invalid_amount"),
        ({"from": "alice", "amount": -500}, 422, "invalid_amount"),
        ({"from": "alice", "amount": 1_000_000_01}, 422, "invalid_amount"),
        ({"from": "alice", "amount": "500"}, 422, "validation_error"),
        ({"from": "alice", "amount": 5.0}, 422, "validation_error"),
        ({"amount": 500}, 422, "validation_error"),
        ({"from": "alice", "amount": 500, "to": "alice"}, 422, "validation_error"),
        ({"from": "alice", "amount": 500, "note": "x" * 281}, 422, "validation_error"),
        ({"from": "bob_b", "amount": 500}, 422, "self_request"),
        ({"from": "nobody_here", "amount": 500}, 404, "unknown_user"),
    ],
)
def test_a_refused_request_says_why_and_asks_nothing(
    alice: UserClient, bob: UserClient, body: dict[str, Any], status: int, code: str
) -> None:
    assert_error(bob.post("/api/payments/requests", json=body), status, code)
    assert alice.get("/api/payments/requests").json()["results"] == []
    assert alice.get("/api/notifications").json()["results"] == []


def test_blocks_refuse_requests_both_ways(alice: UserClient, bob: UserClient) -> None:
    assert alice.put("/api/blocks/bob_b").status_code == 204
    assert_error(bob.post("/api/payments/requests", json={"from": "alice", "amount": 100}), 403, "blocked")
    assert alice.delete("/api/blocks/bob_b").status_code == 204
    assert bob.put("/api/blocks/alice").status_code == 204
    assert_error(bob.post("/api/payments/requests", json={"from": "alice", "amount": 100}), 403, "blocked")
    assert alice.get("/api/payments/requests").json()["results"] == []


def test_accepting_pays_the_requester_and_tells_them(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    asked = ask(bob, "alice")
    with bob.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "kernel.hello"
        response = alice.post(f"/api/payments/requests/{asked['id']}/accept")
        assert response.status_code == 200, response.text
        pushed = [ws.receive_json(), ws.receive_json()]
    paid = response.json()
    assert paid["status"] == "paid" and paid["decided_at"] is not None and isinstance(paid["transaction_id"], int)
    assert balance(alice) == 8_800 and balance(bob) == 1_200
    updated = next(message for message in pushed if message["type"] == "payments.request_updated")
    assert updated["request"] == paid
    notification = bob.get("/api/notifications").json()["results"][0]
    assert notification["kind"] == "payments.request_paid" and notification["text"] == "Alice Liddell (@alice) paid your request for $12.00: pizza"
    assert ledger_of(app).audit() == []


def test_a_paid_request_shows_in_both_histories_as_kind_request(alice: UserClient, bob: UserClient) -> None:
    asked = ask(bob, "alice")
    paid = alice.post(f"/api/payments/requests/{asked['id']}/accept").json()
    sent = alice.get("/api/payments/transactions").json()["results"][0]
    received = bob.get("/api/payments/transactions").json()["results"][0]
    assert sent["id"] == received["id"] == paid["transaction_id"]
    assert (sent["kind"], sent["amount"], sent["note"], sent["counterparty"]["username"]) == ("request", -1_200, "pizza", "bob_b")
    assert (received["kind"], received["amount"], received["counterparty"]["username"]) == ("request", 1_200, "alice")


def test_insufficient_funds_keeps_the_request_pending(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    asked = ask(bob, "alice", amount=10_001)
    assert_error(alice.post(f"/api/payments/requests/{asked['id']}/accept"), 409, "insufficient_funds")
    pending = alice.get("/api/payments/requests?status=pending").json()["results"]
    assert [(item["id"], item["status"], item["transaction_id"]) for item in pending] == [(asked["id"], "pending", None)]
    assert balance(alice) == 10_000 and balance(bob) == 0
    fund(app, alice, 1)
    assert alice.post(f"/api/payments/requests/{asked['id']}/accept").json()["status"] == "paid"
    assert balance(alice) == 0 and balance(bob) == 10_001


def test_concurrent_accepts_pay_the_request_once(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    asked = ask(bob, "alice", amount=1_000)
    start = threading.Barrier(8)

    def accept(_: int) -> int:
        start.wait()
        return alice.post(f"/api/payments/requests/{asked['id']}/accept").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(accept, range(8)))
    assert sorted(statuses) == [200] + [409] * 7
    assert balance(alice) == 9_000 and balance(bob) == 1_000
    assert [item["kind"] for item in bob.get("/api/payments/transactions").json()["results"]] == ["request"]
    assert ledger_of(app).audit() == []


def test_declining_moves_nothing_and_tells_the_requester(alice: UserClient, bob: UserClient) -> None:
    asked = ask(bob, "alice")
    response = alice.post(f"/api/payments/requests/{asked['id']}/decline")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "declined" and response.json()["transaction_id"] is None
    notification = bob.get("/api/notifications").json()["results"][0]
    assert notification["kind"] == "payments.request_declined"
    assert notification["text"] == "Alice Liddell (@alice) declined your request for $12.00: pizza"
    assert balance(alice) == 10_000 and balance(bob) == 0


def test_the_requester_can_cancel_and_the_payer_sees_it(alice: UserClient, bob: UserClient) -> None:
    asked = ask(bob, "alice")
    with alice.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "kernel.hello"
        response = bob.post(f"/api/payments/requests/{asked['id']}/cancel")
        assert response.status_code == 200, response.text
        assert ws.receive_json() == {"type": "payments.request_updated", "request": response.json()}
    assert response.json()["status"] == "cancelled"
    assert alice.get("/api/payments/requests?status=pending").json()["results"] == []


@pytest.mark.parametrize("first", ["accept", "decline", "cancel"])
@pytest.mark.parametrize("then", ["accept", "decline", "cancel"])
def test_acting_on_a_request_that_is_not_pending_is_refused(alice: UserClient, bob: UserClient, first: str, then: str) -> None:
    asked = ask(bob, "alice")
    actor = {"accept": alice, "decline": alice, "cancel": bob}
    assert actor[first].post(f"/api/payments/requests/{asked['id']}/{first}").status_code == 200
    error = assert_error(actor[then].post(f"/api/payments/requests/{asked['id']}/{then}"), 409, "not_pending")
    assert error["request_status"] == {"accept": "paid", "decline": "declined", "cancel": "cancelled"}[first]
    assert balance(bob) == (1_200 if first == "accept" else 0)


@pytest.mark.parametrize("action", ["accept", "decline", "cancel"])
def test_someone_who_is_neither_party_finds_nothing(alice: UserClient, bob: UserClient, carol: UserClient, action: str) -> None:
    asked = ask(bob, "alice")
    assert_error(carol.post(f"/api/payments/requests/{asked['id']}/{action}"), 404, "not_found")
    assert alice.get("/api/payments/requests").json()["results"][0]["status"] == "pending"


@pytest.mark.parametrize(("who", "action"), [("requester", "accept"), ("requester", "decline"), ("payer", "cancel")])
def test_the_wrong_party_is_forbidden(alice: UserClient, bob: UserClient, who: str, action: str) -> None:
    asked = ask(bob, "alice")
    client = bob if who == "requester" else alice
    assert_error(client.post(f"/api/payments/requests/{asked['id']}/{action}"), 403, "forbidden")
    assert alice.get("/api/payments/requests").json()["results"][0]["status"] == "pending"


@pytest.mark.parametrize("request_id", ["999", str(2**40)])
def test_an_unknown_request_is_not_found(alice: UserClient, request_id: str) -> None:
    assert_error(alice.post(f"/api/payments/requests/{request_id}/accept"), 404, "not_found")


def test_a_request_cannot_be_paid_once_either_party_blocks_the_other(alice: UserClient, bob: UserClient) -> None:
    asked = ask(bob, "alice")
    assert bob.put("/api/blocks/alice").status_code == 204
    assert_error(alice.post(f"/api/payments/requests/{asked['id']}/accept"), 403, "blocked")
    assert balance(bob) == 0
    assert alice.post(f"/api/payments/requests/{asked['id']}/decline").json()["status"] == "declined"


def test_lists_are_incoming_or_outgoing_newest_first_with_a_cursor(alice: UserClient, bob: UserClient) -> None:
    for amount in (100, 200, 300):
        ask(bob, "alice", amount=amount)
    mine = ask(alice, "bob_b", amount=400)
    first = alice.get("/api/payments/requests?direction=incoming&limit=2").json()
    assert [item["amount"] for item in first["results"]] == [300, 200]
    rest = alice.get(f"/api/payments/requests?direction=incoming&limit=2&cursor={first['next_cursor']}").json()
    assert [item["amount"] for item in rest["results"]] == [100] and rest["next_cursor"] is None
    assert [item["id"] for item in alice.get("/api/payments/requests?direction=outgoing").json()["results"]] == [mine["id"]]
    assert [item["amount"] for item in alice.get("/api/payments/requests").json()["results"]] == [400, 300, 200, 100]
    assert [item["amount"] for item in bob.get("/api/payments/requests?direction=outgoing").json()["results"]] == [300, 200, 100]


def test_the_list_filters_by_status(alice: UserClient, bob: UserClient) -> None:
    paid, waiting = ask(bob, "alice", amount=100), ask(bob, "alice", amount=200)
    alice.post(f"/api/payments/requests/{paid['id']}/accept")
    assert [item["id"] for item in bob.get("/api/payments/requests?status=pending").json()["results"]] == [waiting["id"]]
    assert [item["id"] for item in bob.get("/api/payments/requests?status=paid").json()["results"]] == [paid["id"]]


@pytest.mark.parametrize("query", ["direction=sideways", "status=maybe", "cursor=nonsense", "limit=0"])
def test_a_bad_list_query_says_which_parameter(alice: UserClient, query: str) -> None:
    error = alice.get(f"/api/payments/requests?{query}")
    assert error.status_code == 422, error.text


def test_requests_need_a_signed_in_user(app: Starlette) -> None:
    anonymous = TestClient(app)
    assert_error(anonymous.get("/api/payments/requests"), 401, "unauthorized")
    assert_error(anonymous.post("/api/payments/requests", json={"from": "alice", "amount": 1}), 401, "unauthorized")
    assert_error(anonymous.post("/api/payments/requests/1/accept"), 401, "unauthorized")
