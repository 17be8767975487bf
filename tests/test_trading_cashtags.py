"""Cashtags inside real feed posts: a price chip for a known symbol, plain text for anything else, a card on the post's page."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from kernel import create_app
from plugins.trading.service import TRADING
from tests.conftest import UserClient, make_settings, running, sign_up


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Starlette]:
    # The embedded database only: cashtags read no table; the trading API tests run on PostgreSQL too.
    application = create_app(make_settings(tmp_path / "data"))
    with running(application):
        yield application


@pytest.fixture
def alice(app: Starlette) -> UserClient:
    return sign_up(app, "alice")


def post(client: UserClient, text: str) -> dict:
    response = client.post("/api/feed/posts", json={"text": text})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_known_cashtag_becomes_a_chip_with_price_and_day_change(alice: UserClient) -> None:
    shown = post(alice, "Watching $TSLA today")["html"]
    quote = alice.get("/api/trading/quotes/TSLA").json()
    assert '<a class="cashtag" href="/trading/TSLA" data-cashtag="TSLA" title="Simulated data, delayed 15 min">' in shown
    assert f'<span class="cashtag-price">{quote["price"]:,.2f}</span>' in shown
    assert f"{quote['change_pct']:+.2f}%".replace("-", "\u2212") in shown
    assert shown.startswith("Watching ") and shown.endswith(" today")


def test_cashtags_are_recognised_in_any_case_and_for_crypto(alice: UserClient) -> None:
    shown = post(alice, "$btc and $Eth")["html"]
    assert 'href="/trading/BTC"' in shown and 'href="/trading/ETH"' in shown
    assert "$btc" not in shown and "$BTC" in shown


def test_an_unknown_cashtag_stays_plain_text(alice: UserClient) -> None:
    shown = post(alice, "$NOPE is not a ticker, and <b> stays text")["html"]
    assert "cashtag" not in shown
    assert "$NOPE is not a ticker" in shown and "&lt;b&gt;" in shown


@pytest.mark.parametrize("text", ["costs $5", "US$TSLA", "$TSLAX", "$$TSLA"])
def test_dollar_amounts_and_glued_words_are_not_cashtags(alice: UserClient, text: str) -> None:
    assert "cashtag" not in post(alice, text)["html"]


def test_the_chip_shows_what_everyone_may_see_the_delayed_price(app: Starlette, alice: UserClient) -> None:
    kernel = app.state.kernel
    app.state.test_portal.call(kernel.grant, kernel.user("alice"), "premium")
    shown = post(alice, "$BTC")["html"]
    delayed = TRADING.of(app.state.kernel).quotes.chip_quote("BTC")
    assert f'<span class="cashtag-price">{delayed["price"]:,.2f}</span>' in shown and delayed["delayed"] is True


def test_the_post_page_shows_a_card_with_a_chart_and_a_trade_button(alice: UserClient) -> None:
    created = post(alice, "$AAPL vs $MSFT, and $NOPE")
    page = alice.get(f"/feed/posts/{created['id']}", headers={"accept": "text/html"}).text
    assert page.count('class="trading-widget"') == 2
    assert 'data-symbol="AAPL"' in page and 'data-symbol="MSFT"' in page
    assert '<polyline fill="none"' in page
    assert 'href="/trading/AAPL#trade"' in page
    assert "Simulated data · delayed 15 min" in html.unescape(page)


def test_a_premium_reader_sees_the_card_in_real_time(app: Starlette, alice: UserClient) -> None:
    created = post(alice, "$AAPL")
    bobby = sign_up(app, "bobby")
    kernel = app.state.kernel
    app.state.test_portal.call(kernel.grant, kernel.user("bobby"), "premium")
    page = bobby.get(f"/feed/posts/{created['id']}", headers={"accept": "text/html"}).text
    assert "Simulated data · real-time" in html.unescape(page)


def test_a_post_without_cashtags_has_no_card(alice: UserClient) -> None:
    created = post(alice, "no tickers here")
    assert "trading-widget" not in alice.get(f"/feed/posts/{created['id']}", headers={"accept": "text/html"}).text


def test_at_most_three_cards_are_shown(alice: UserClient) -> None:
    created = post(alice, "$AAPL $MSFT $TSLA $NVDA $AAPL")
    page = alice.get(f"/feed/posts/{created['id']}", headers={"accept": "text/html"}).text
    assert page.count('class="trading-widget"') == 3
