"""Paper trading: orders, fills against the provider's prices, buying power, positions and no double fills."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from kernel import ApiError, create_app
from plugins.trading.paper import OrderRequest
from plugins.trading.service import TRADING
from tests.conftest import UserClient, assert_error, make_settings, running, sign_up
from tests.realtime_kit import connect, receive
from tests.trading_kit import ScriptedMarket

CASH = 100_000_00


@pytest.fixture
def app(tmp_path: Path, database_url: str | None) -> Iterator[Starlette]:
    settings = make_settings(
        tmp_path / "data", database_url, plugins={"trading": {"provider": "tests.trading_kit:ScriptedMarket", "tick_seconds": 30}}
    )
    application = create_app(settings)
    with running(application):
        yield application


@pytest.fixture
def market(app: Starlette) -> ScriptedMarket:
    found = TRADING.of(app.state.kernel).market
    assert isinstance(found, ScriptedMarket)
    found.set_price("AAPL", 200.0)
    found.set_price("BTC", 50_000.0)
    return found


@pytest.fixture
def alice(app: Starlette, market: ScriptedMarket) -> UserClient:
    return sign_up(app, "alice")


def order(client: UserClient, status: int = 201, **body: Any) -> dict[str, Any]:
    response = client.post("/api/trading/orders", json={"time_in_force": "gtc", **body})
    assert response.status_code == status, response.text
    return response.json()


def match(app: Starlette) -> list[Any]:
    """Run the matcher once, now (it also runs on its own every tick)."""
    trading = TRADING.of(app.state.kernel)
    return app.state.test_portal.call(trading.matcher.run_once)


def account(client: UserClient) -> dict[str, Any]:
    return client.get("/api/trading/account").json()


# Accounts and market orders -----------------------------------------------------------------------


def test_a_new_account_holds_the_operators_starting_cash(alice: UserClient) -> None:
    assert account(alice) == {
        "cash": CASH,
        "buying_power": CASH,
        "positions_value": 0,
        "equity": CASH,
        "currency": "USD",
        "delayed": True,
        "simulated": True,
    }


def test_a_market_buy_fills_at_once_at_the_market_price(alice: UserClient) -> None:
    placed = order(alice, symbol="AAPL", side="buy", qty=10, type="market")
    assert placed["status"] == "filled" and placed["filled_price"] == 200.0 and placed["filled_value"] == 2_000_00
    assert account(alice)["cash"] == CASH - 2_000_00
    [position] = alice.get("/api/trading/positions").json()["results"]
    assert position["symbol"] == "AAPL" and position["qty"] == "10" and position["cost_basis"] == 2_000_00


def test_fractional_quantities_are_bought_and_cost_to_the_cent(alice: UserClient) -> None:
    placed = order(alice, symbol="BTC", side="buy", qty="0.012345", type="market")
    assert placed["qty"] == "0.012345" and placed["filled_value"] == 617_25  # 0.012345 × 50,000 = 617.25
    assert account(alice)["cash"] == CASH - 617_25


def test_selling_returns_cash_and_shrinks_the_position_at_average_cost(alice: UserClient, market: ScriptedMarket) -> None:
    order(alice, symbol="AAPL", side="buy", qty=10, type="market")
    market.set_price("AAPL", 250.0)
    sold = order(alice, symbol="AAPL", side="sell", qty=4, type="market")
    assert sold["filled_value"] == 1_000_00
    assert account(alice)["cash"] == CASH - 2_000_00 + 1_000_00
    [position] = alice.get("/api/trading/positions").json()["results"]
    assert position["qty"] == "6" and position["cost_basis"] == 1_200_00


def test_selling_everything_closes_the_position(alice: UserClient) -> None:
    order(alice, symbol="AAPL", side="buy", qty="1.5", type="market")
    order(alice, symbol="AAPL", side="sell", qty="1.5", type="market")
    assert alice.get("/api/trading/positions").json()["results"] == []


def test_positions_show_profit_and_loss_at_the_current_price(app: Starlette, alice: UserClient, market: ScriptedMarket) -> None:
    kernel = app.state.kernel
    app.state.test_portal.call(kernel.grant, kernel.user("alice"), "premium")  # real-time valuation
    order(alice, symbol="AAPL", side="buy", qty=10, type="market")
    market.set_price("AAPL", 210.0)
    [position] = alice.get("/api/trading/positions").json()["results"]
    assert position["market_value"] == 2_100_00 and position["unrealized_pl"] == 100_00
    assert position["unrealized_pl_pct"] == 5.0 and position["avg_entry_price"] == 200.0
    assert account(alice)["equity"] == CASH + 100_00


# Limit and stop orders --------------------------------------------------------------------------


def test_a_limit_buy_waits_for_the_price_to_reach_its_limit(app: Starlette, alice: UserClient, market: ScriptedMarket) -> None:
    placed = order(alice, symbol="AAPL", side="buy", qty=10, type="limit", limit_price=190)
    assert placed["status"] == "open"
    market.set_price("AAPL", 195.0)
    assert match(app) == []
    market.set_price("AAPL", 189.5)
    [fill] = match(app)
    assert fill.order["id"] == placed["id"] and fill.order["filled_price"] == 189.5  # never worse than the limit
    assert account(alice)["cash"] == CASH - 1_895_00


def test_a_marketable_limit_order_fills_at_once_at_the_better_market_price(alice: UserClient) -> None:
    placed = order(alice, symbol="AAPL", side="buy", qty=1, type="limit", limit_price="205.00")
    assert placed["status"] == "filled" and placed["filled_price"] == 200.0


def test_a_limit_sell_fills_when_the_price_rises_to_it(app: Starlette, alice: UserClient, market: ScriptedMarket) -> None:
    order(alice, symbol="AAPL", side="buy", qty=2, type="market")
    placed = order(alice, symbol="AAPL", side="sell", qty=2, type="limit", limit_price=220)
    market.set_price("AAPL", 219.99)
    assert match(app) == []
    market.set_price("AAPL", 221.0)
    [fill] = match(app)
    assert fill.order["id"] == placed["id"] and fill.order["filled_price"] == 221.0


def test_a_stop_sell_triggers_when_the_price_falls_to_its_stop(app: Starlette, alice: UserClient, market: ScriptedMarket) -> None:
    order(alice, symbol="AAPL", side="buy", qty=2, type="market")
    placed = order(alice, symbol="AAPL", side="sell", qty=2, type="stop", stop_price=180)
    market.set_price("AAPL", 185.0)
    assert match(app) == []
    market.set_price("AAPL", 179.0)
    [fill] = match(app)
    assert fill.order["id"] == placed["id"] and fill.order["filled_price"] == 179.0


def test_a_stop_buy_triggers_when_the_price_rises_to_its_stop(app: Starlette, alice: UserClient, market: ScriptedMarket) -> None:
    placed = order(alice, symbol="AAPL", side="buy", qty=1, type="stop", stop_price=210)
    assert placed["status"] == "open"
    market.set_price("AAPL", 211.0)
    [fill] = match(app)
    assert fill.order["filled_price"] == 211.0


def test_the_owner_is_told_when_an_order_fills_later(app: Starlette, alice: UserClient, market: ScriptedMarket) -> None:
    placed = order(alice, symbol="BTC", side="buy", qty="0.1", type="limit", limit_price=49_000)
    with connect(alice) as ws:
        market.set_price("BTC", 48_500.0)
        match(app)
        told = receive(ws, "trading.order")
    assert told["order"]["id"] == placed["id"] and told["order"]["status"] == "filled"
    notes = alice.get("/api/notifications").json()["results"]
    assert notes[0]["kind"] == "trading.filled" and "0.1 BTC" in notes[0]["text"]


# Market hours and time in force ---------------------------------------------------------------------


def test_a_market_order_while_the_market_is_closed_waits_for_the_open(app: Starlette, alice: UserClient, market: ScriptedMarket) -> None:
    market.set_open("AAPL", False)
    placed = order(alice, symbol="AAPL", side="buy", qty=1, type="market")
    assert placed["status"] == "open"
    assert match(app) == []
    market.set_open("AAPL", True)
    [fill] = match(app)
    assert fill.order["id"] == placed["id"]


def test_a_day_order_expires_at_the_close_and_frees_its_buying_power(app: Starlette, alice: UserClient, market: ScriptedMarket) -> None:
    market.set_open("AAPL", True, closes_at=datetime.now(UTC) + timedelta(hours=1))
    placed = order(alice, symbol="AAPL", side="buy", qty=10, type="limit", limit_price=100, time_in_force="day")
    assert placed["expires_at"] is not None
    assert account(alice)["buying_power"] == CASH - 1_000_00
    broker = TRADING.of(app.state.kernel).broker
    assert broker.expire(datetime.now(UTC) + timedelta(minutes=59)) == 0
    assert broker.expire(datetime.now(UTC) + timedelta(hours=2)) == 1
    expired = alice.get(f"/api/trading/orders/{placed['id']}").json()
    assert expired["status"] == "expired" and expired["reason"] == "session_closed"
    assert account(alice)["buying_power"] == CASH


def test_a_gtc_order_does_not_expire(alice: UserClient) -> None:
    placed = order(alice, symbol="AAPL", side="buy", qty=1, type="limit", limit_price=100)
    assert placed["time_in_force"] == "gtc" and placed["expires_at"] is None


# Buying power and holdings ------------------------------------------------------------------------------


def test_a_buy_beyond_buying_power_is_refused_and_nothing_is_kept(alice: UserClient) -> None:
    assert_error(alice.post("/api/trading/orders", json={"symbol": "BTC", "side": "buy", "qty": 3, "type": "market"}), 403, "insufficient_buying_power")
    assert alice.get("/api/trading/orders").json()["results"] == []
    assert account(alice)["cash"] == CASH


def test_a_refused_market_buy_does_not_tell_a_delayed_user_the_price_now(alice: UserClient) -> None:
    refused = alice.post("/api/trading/orders", json={"symbol": "AAPL", "side": "buy", "qty": 1_000_000, "type": "market"})
    error = assert_error(refused, 403, "insufficient_buying_power")
    assert error["message"] == "Not enough buying power for this order: you have $100,000.00."


def test_a_stop_buy_that_would_fill_at_once_beyond_the_cash_is_refused_and_its_id_stays_free(alice: UserClient, market: ScriptedMarket) -> None:
    market.set_price("BTC", 60_000.0)
    body = {"symbol": "BTC", "side": "buy", "qty": 2, "type": "stop", "stop_price": 40_000, "client_order_id": "stop-1"}
    assert_error(alice.post("/api/trading/orders", json={"time_in_force": "gtc", **body}), 403, "insufficient_buying_power")
    assert alice.get("/api/trading/orders").json()["results"] == []
    market.set_price("BTC", 30_000.0)
    assert order(alice, **body)["status"] == "open"


def test_a_stop_buy_the_account_cannot_pay_when_it_triggers_is_cancelled_and_its_owner_told(app: Starlette, alice: UserClient, market: ScriptedMarket) -> None:
    placed = order(alice, symbol="BTC", side="buy", qty="1.5", type="stop", stop_price=55_000)  # holds 82,500
    assert placed["status"] == "open"
    market.set_price("BTC", 70_000.0)  # triggers; 105,000 is more than the 100,000 there is
    with connect(alice) as ws:
        match(app)
        told = receive(ws, "trading.order")
    assert told["order"]["status"] == "canceled" and told["order"]["reason"] == "insufficient_buying_power"
    assert alice.get("/api/notifications").json()["results"][0]["kind"] == "trading.canceled"
    assert account(alice)["cash"] == CASH


def test_open_buy_orders_hold_buying_power(alice: UserClient) -> None:
    order(alice, symbol="BTC", side="buy", qty="1.5", type="limit", limit_price=40_000)  # holds 60,000
    assert account(alice)["buying_power"] == CASH - 60_000_00
    assert account(alice)["cash"] == CASH
    refused = alice.post("/api/trading/orders", json={"symbol": "BTC", "side": "buy", "qty": 1, "type": "limit", "limit_price": 45_000})
    assert_error(refused, 403, "insufficient_buying_power")


def test_one_cannot_sell_what_one_does_not_hold(alice: UserClient) -> None:
    error = assert_error(alice.post("/api/trading/orders", json={"symbol": "AAPL", "side": "sell", "qty": 1, "type": "market"}), 403, "insufficient_qty")
    assert error["field"] == "qty"


def test_open_sell_orders_hold_the_shares_they_sell(alice: UserClient) -> None:
    order(alice, symbol="AAPL", side="buy", qty=5, type="market")
    order(alice, symbol="AAPL", side="sell", qty=3, type="limit", limit_price=300)
    refused = alice.post("/api/trading/orders", json={"symbol": "AAPL", "side": "sell", "qty": 3, "type": "market"})
    assert_error(refused, 403, "insufficient_qty")


# Idempotency and cancelling ------------------------------------------------------------------------------


def test_an_order_sent_again_with_its_client_order_id_is_placed_once(alice: UserClient) -> None:
    body = {"symbol": "AAPL", "side": "buy", "qty": 1, "type": "market", "client_order_id": "abc-1"}
    first = order(alice, **body)
    again = order(alice, 200, **body)
    assert again == first
    assert account(alice)["cash"] == CASH - 200_00


def test_a_client_order_id_reused_for_other_terms_is_refused(alice: UserClient) -> None:
    order(alice, symbol="AAPL", side="buy", qty=1, type="market", client_order_id="abc-2")
    refused = alice.post(
        "/api/trading/orders", json={"symbol": "AAPL", "side": "buy", "qty": 2, "type": "market", "client_order_id": "abc-2"}
    )
    assert_error(refused, 409, "duplicate_client_order_id")


def test_cancelling_an_open_order_frees_its_buying_power(alice: UserClient) -> None:
    placed = order(alice, symbol="AAPL", side="buy", qty=10, type="limit", limit_price=100)
    cancelled = alice.delete(f"/api/trading/orders/{placed['id']}").json()
    assert cancelled["status"] == "canceled"
    assert account(alice)["buying_power"] == CASH


def test_a_filled_order_cannot_be_cancelled(alice: UserClient) -> None:
    placed = order(alice, symbol="AAPL", side="buy", qty=1, type="market")
    assert_error(alice.delete(f"/api/trading/orders/{placed['id']}"), 409, "order_not_open")


@pytest.mark.parametrize("order_id", ["²", "abc", "9999999"])
def test_an_order_id_that_is_not_one_is_not_found(alice: UserClient, order_id: str) -> None:
    assert_error(alice.get(f"/api/trading/orders/{order_id}"), 404, "unknown_order")


def test_another_users_order_is_not_found(app: Starlette, alice: UserClient) -> None:
    placed = order(alice, symbol="AAPL", side="buy", qty=1, type="limit", limit_price=100)
    bobby = sign_up(app, "bobby")
    assert_error(bobby.get(f"/api/trading/orders/{placed['id']}"), 404, "unknown_order")
    assert_error(bobby.delete(f"/api/trading/orders/{placed['id']}"), 404, "unknown_order")


def test_orders_are_listed_newest_first_by_status(alice: UserClient) -> None:
    filled = order(alice, symbol="AAPL", side="buy", qty=1, type="market")
    waiting = order(alice, symbol="AAPL", side="buy", qty=1, type="limit", limit_price=100)
    assert [o["id"] for o in alice.get("/api/trading/orders").json()["results"]] == [waiting["id"], filled["id"]]
    assert [o["id"] for o in alice.get("/api/trading/orders?status=open").json()["results"]] == [waiting["id"]]
    assert [o["id"] for o in alice.get("/api/trading/orders?status=closed").json()["results"]] == [filled["id"]]


# Bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"type": "limit"}, "validation_error", "limit_price"),
        ({"type": "stop"}, "validation_error", "stop_price"),
        ({"type": "market", "limit_price": 10}, "validation_error", "limit_price"),
        ({"type": "market", "qty": 0}, "validation_error", "qty"),
        ({"type": "market", "qty": -1}, "validation_error", "qty"),
        ({"type": "market", "qty": "0.0000001"}, "validation_error", "qty"),
        ({"type": "market", "qty": "lots"}, "validation_error", "qty"),
        ({"type": "market", "side": "short"}, "validation_error", "side"),
        ({"type": "trailing"}, "validation_error", "type"),
        ({"type": "market", "time_in_force": "ioc"}, "validation_error", "time_in_force"),
        ({"type": "limit", "limit_price": "1e13"}, "validation_error", "limit_price"),
        ({"type": "stop", "stop_price": 2_000_000_000}, "validation_error", "stop_price"),
        ({"type": "market", "symbol": "NOPE"}, "unknown_symbol", None),
    ],
)
def test_a_malformed_order_is_refused_naming_what_is_wrong(alice: UserClient, body: dict, code: str, field: str | None) -> None:
    full = {"symbol": "AAPL", "side": "buy", "qty": 1, **body}
    error = assert_error(alice.post("/api/trading/orders", json=full), 404 if code == "unknown_symbol" else 422, code)
    if field is not None:
        assert error["field"] == field
    assert alice.get("/api/trading/orders").json()["results"] == []


# No double fills ---------------------------------------------------------------------------------------


def test_concurrent_buys_never_spend_more_than_the_cash(app: Starlette, alice: UserClient) -> None:
    broker = TRADING.of(app.state.kernel).broker
    user = app.state.kernel.user("alice")
    start = threading.Barrier(12)

    def buy(_: int) -> str:
        start.wait()
        try:
            broker.place(user, OrderRequest("BTC", "buy", Decimal("0.5"), "market", "gtc"))
            return "filled"
        except ApiError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(buy, range(12)))
    assert sorted(outcomes) == ["filled"] * 4 + ["insufficient_buying_power"] * 8  # 4 × 25,000 = 100,000
    assert account(alice)["cash"] == 0


def test_an_order_matched_and_cancelled_at_once_fills_at_most_once(app: Starlette, alice: UserClient, market: ScriptedMarket) -> None:
    trading = TRADING.of(app.state.kernel)
    user = app.state.kernel.user("alice")
    placed = [order(alice, symbol="AAPL", side="buy", qty=1, type="limit", limit_price=150) for _ in range(10)]
    market.set_price("AAPL", 140.0)
    now = datetime.now(UTC)
    start = threading.Barrier(3)

    def matcher(_: int) -> int:
        start.wait()
        return len(trading.broker.match("AAPL", now))

    def canceller(_: int) -> int:
        start.wait()
        cancelled = 0
        for item in placed:
            try:
                trading.broker.cancel(user, item["id"])
                cancelled += 1
            except ApiError:
                pass
        return cancelled

    with ThreadPoolExecutor(max_workers=3) as pool:
        matched = [pool.submit(matcher, n) for n in range(2)]
        cancelled = pool.submit(canceller, 0).result()
        fills = sum(future.result() for future in matched)
    assert fills + cancelled == 10
    statuses = [alice.get(f"/api/trading/orders/{item['id']}").json()["status"] for item in placed]
    assert statuses.count("filled") == fills and statuses.count("canceled") == cancelled
    assert account(alice)["cash"] == CASH - 140_00 * fills
