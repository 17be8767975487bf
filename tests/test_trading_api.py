"""The trading API: symbols, quotes by tier, bars, watchlists and live ticks over the realtime channel."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette

from kernel import create_app
from plugins.trading.service import TRADING
from tests.conftest import UserClient, assert_error, make_settings, running, sign_up
from tests.realtime_kit import ask, connect, receive


@pytest.fixture
def app(tmp_path: Path, database_url: str | None) -> Iterator[Starlette]:
    application = create_app(make_settings(tmp_path / "data", database_url, plugins={"trading": {"tick_seconds": 0.2}}))
    with running(application):
        yield application


@pytest.fixture
def alice(app: Starlette) -> UserClient:
    return sign_up(app, "alice")


def premium(app: Starlette, client: UserClient) -> UserClient:
    kernel = app.state.kernel
    app.state.test_portal.call(kernel.grant, kernel.user(client.username), "premium")
    return client


def when(quote: dict) -> datetime:
    return datetime.fromisoformat(quote["as_of"].replace("Z", "+00:00"))


# Symbols and quotes ---------------------------------------------------------------------------


def test_symbols_are_searched_by_symbol_and_name(alice: UserClient) -> None:
    results = alice.get("/api/trading/symbols", params={"q": "tesla"}).json()["results"]
    assert results == [{"symbol": "TSLA", "name": "Tesla, Inc.", "exchange": "NASDAQ", "asset_class": "stock"}]


def test_a_quote_says_it_is_simulated_and_what_it_holds(alice: UserClient) -> None:
    quote = alice.get("/api/trading/quotes/btc").json()
    assert quote["symbol"] == "BTC" and quote["simulated"] is True and quote["currency"] == "USD"
    assert quote["price"] > 0
    assert quote["change"] == pytest.approx(quote["price"] - quote["previous_close"], abs=0.01)
    assert {"change_pct", "as_of", "delayed", "market_open", "high", "low"} <= set(quote)


def test_free_users_see_quotes_15_minutes_late(alice: UserClient) -> None:
    quote = alice.get("/api/trading/quotes/BTC").json()
    assert quote["delayed"] is True and quote["delay_minutes"] == 15
    age = datetime.now(UTC) - when(quote)
    assert timedelta(minutes=14, seconds=50) <= age <= timedelta(minutes=15, seconds=30)


def test_premium_users_see_quotes_in_real_time(app: Starlette, alice: UserClient) -> None:
    quote = premium(app, alice).get("/api/trading/quotes/BTC").json()
    assert quote["delayed"] is False and quote["delay_minutes"] == 0
    assert datetime.now(UTC) - when(quote) < timedelta(seconds=30)


def test_the_delayed_quote_is_the_real_time_quote_of_15_minutes_ago(app: Starlette, alice: UserClient) -> None:
    delayed = alice.get("/api/trading/quotes/ETH").json()
    market = TRADING.of(app.state.kernel).market
    assert delayed["price"] == market.quote("ETH", when(delayed)).price


def test_an_unknown_symbol_is_404(alice: UserClient) -> None:
    error = assert_error(alice.get("/api/trading/quotes/NOPE"), 404, "unknown_symbol")
    assert error["symbol"] == "NOPE"


def test_quotes_need_a_signed_in_user(app: Starlette) -> None:
    from starlette.testclient import TestClient

    assert_error(TestClient(app).get("/api/trading/quotes/AAPL"), 401, "unauthorized")


# Bars -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("range_", ["1D", "5D", "1M", "1Y"])
def test_bars_come_for_every_range(alice: UserClient, range_: str) -> None:
    body = alice.get("/api/trading/bars/BTC", params={"range": range_}).json()
    assert body["range"] == range_ and body["simulated"] is True and body["delayed"] is True
    assert len(body["bars"]) > 10
    assert {"t", "o", "h", "l", "c"} == set(body["bars"][0])


def test_a_bad_range_is_refused(alice: UserClient) -> None:
    assert assert_error(alice.get("/api/trading/bars/BTC", params={"range": "2W"}), 422, "validation_error")["field"] == "range"


# Watchlists ---------------------------------------------------------------------------------


def test_a_watchlist_keeps_symbols_in_the_order_added_with_quotes(alice: UserClient) -> None:
    assert alice.put("/api/trading/watchlist/tsla").status_code == 201
    assert alice.put("/api/trading/watchlist/BTC").status_code == 201
    results = alice.get("/api/trading/watchlist").json()["results"]
    assert [item["symbol"] for item in results] == ["TSLA", "BTC"]
    assert all(item["price"] > 0 for item in results)


def test_watching_twice_keeps_one_entry(alice: UserClient) -> None:
    assert alice.put("/api/trading/watchlist/AAPL").status_code == 201
    assert alice.put("/api/trading/watchlist/AAPL").status_code == 200
    assert len(alice.get("/api/trading/watchlist").json()["results"]) == 1


def test_unwatching_removes_the_symbol(alice: UserClient) -> None:
    alice.put("/api/trading/watchlist/AAPL")
    assert alice.delete("/api/trading/watchlist/AAPL").status_code == 204
    assert alice.get("/api/trading/watchlist").json()["results"] == []


def test_an_unknown_symbol_cannot_be_watched(alice: UserClient) -> None:
    assert_error(alice.put("/api/trading/watchlist/NOPE"), 404, "unknown_symbol")
    assert alice.get("/api/trading/watchlist").json()["results"] == []


def test_watchlists_are_each_users_own(app: Starlette, alice: UserClient) -> None:
    bob = sign_up(app, "bobby")
    alice.put("/api/trading/watchlist/AAPL")
    assert bob.get("/api/trading/watchlist").json()["results"] == []


# Live ticks ------------------------------------------------------------------------------------


def test_subscribers_get_ticks_of_their_symbols(alice: UserClient) -> None:
    with connect(alice) as ws:
        reply = ask(ws, {"type": "trading.subscribe", "symbols": ["BTC", "$eth"]})
        assert reply["type"] == "trading.subscribed" and reply["symbols"] == ["BTC", "ETH"]
        assert [quote["symbol"] for quote in reply["quotes"]] == ["BTC", "ETH"]
        tick = receive(ws, "trading.tick")
        assert [quote["symbol"] for quote in tick["quotes"]] == ["BTC", "ETH"]


def test_a_free_users_ticks_are_delayed_and_a_premium_users_are_not(app: Starlette, alice: UserClient) -> None:
    bob = premium(app, sign_up(app, "bobby"))
    with connect(alice) as free_ws, connect(bob) as premium_ws:
        ask(free_ws, {"type": "trading.subscribe", "symbols": ["BTC"]})
        ask(premium_ws, {"type": "trading.subscribe", "symbols": ["BTC"]})
        late = receive(free_ws, "trading.tick")["quotes"][0]
        live = receive(premium_ws, "trading.tick")["quotes"][0]
    assert late["delayed"] is True and live["delayed"] is False
    assert when(live) - when(late) > timedelta(minutes=14)


def test_unsubscribing_stops_the_ticks(alice: UserClient) -> None:
    with connect(alice) as ws:
        ask(ws, {"type": "trading.subscribe", "symbols": ["BTC"]})
        receive(ws, "trading.tick")
        assert ask(ws, {"type": "trading.unsubscribe"})["symbols"] == []
        ask(ws, {"type": "trading.subscribe", "symbols": ["ETH"]})
        for _ in range(3):
            assert [q["symbol"] for q in receive(ws, "trading.tick")["quotes"]] == ["ETH"]


def test_subscribing_to_an_unknown_symbol_is_refused_whole(alice: UserClient) -> None:
    with connect(alice) as ws:
        error = ask(ws, {"type": "trading.subscribe", "symbols": ["BTC", "NOPE"]})
        assert error["type"] == "error" and error["code"] == "unknown_symbol"
        assert ask(ws, {"type": "trading.unsubscribe"})["symbols"] == []


def test_a_malformed_subscription_names_the_field(alice: UserClient) -> None:
    with connect(alice) as ws:
        error = ask(ws, {"type": "trading.subscribe", "symbols": "BTC"})
        assert error["code"] == "validation_error" and error["field"] == "symbols"


def test_a_plan_that_ends_turns_live_ticks_delayed_at_the_next_tick(app: Starlette, alice: UserClient) -> None:
    premium(app, alice)
    kernel = app.state.kernel
    with connect(alice) as ws:
        assert ask(ws, {"type": "trading.subscribe", "symbols": ["BTC"]})["delayed"] is False
        assert receive(ws, "trading.tick")["quotes"][0]["delayed"] is False
        app.state.test_portal.call(kernel.revoke, kernel.user("alice"), "premium")
        for _ in range(3):  # a tick priced before the change may still be on its way
            if receive(ws, "trading.tick")["quotes"][0]["delayed"]:
                break
        else:
            raise AssertionError("the ticks stayed real-time")


def test_a_symbol_search_limit_must_be_a_number(alice: UserClient) -> None:
    assert_error(alice.get("/api/trading/symbols", params={"q": "a", "limit": "²"}), 422, "validation_error")
