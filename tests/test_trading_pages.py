"""The trading pages through HTTP: a symbol's page, the markets home and the portfolio.

Prices come from the test kit's scripted market (the simulated market with
prices a test fixes), so that the figures on a page can be checked exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kernel import create_app
from plugins.trading.service import TRADING
from tests.conftest import UserClient, make_settings, running, sign_up
from tests.test_pages import HTML
from tests.trading_kit import ScriptedMarket


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Starlette]:
    # The embedded database only: the pages draw on the service, whose own tests run on PostgreSQL too.
    plugins = {"trading": {"provider": "tests.trading_kit:ScriptedMarket"}}
    application = create_app(make_settings(tmp_path / "data", plugins=plugins))
    with running(application):
        yield application


@pytest.fixture
def market(app: Starlette) -> ScriptedMarket:
    return TRADING.of(app.state.kernel).market


@pytest.fixture
def alice(app: Starlette) -> UserClient:
    return sign_up(app, "alice", display_name="Alice Liddell")


def premium(app: Starlette, client: UserClient) -> UserClient:
    kernel = app.state.kernel
    app.state.test_portal.call(kernel.grant, kernel.user(client.username), "premium")
    return client


def page(client: TestClient, path: str, status: int = 200) -> str:
    response = client.get(path, headers=HTML)
    assert response.status_code == status, response.text
    return response.text


def text_of(html: str, attribute: str) -> str:
    """The text of the element carrying ``attribute`` (as in ``data-trading-price``)."""
    match = re.search(rf"<[^>]*\b{re.escape(attribute)}(?![\w-])[^>]*>(.*?)</", html, re.S)
    assert match, f"no element with {attribute}"
    return re.sub(r"\s+", " ", match.group(1)).strip()


def order(client: UserClient, **terms: Any) -> dict[str, Any]:
    response = client.post("/api/trading/orders", json={"type": "market", "side": "buy", **terms})
    assert response.status_code == 201, response.text
    return response.json()


# One symbol ------------------------------------------------------------------------------------


def test_a_symbol_page_shows_the_name_symbol_exchange_and_asset_class(alice: UserClient) -> None:
    text = page(alice, "/trading/TSLA")
    assert '<h1 id="symbol-title">Tesla, Inc.</h1>' in text
    assert '<span class="trading-ticker">$TSLA</span> · NASDAQ · Stocks</p>' in text


def test_a_symbol_page_shows_the_price_and_the_day_change_with_its_sign(alice: UserClient, market: ScriptedMarket) -> None:
    market.set_price("TSLA", 1245.1)
    quote = alice.get("/api/trading/quotes/TSLA").json()
    text = page(alice, "/trading/TSLA")
    assert text_of(text, "data-trading-price") == "1,245.10"
    sign = "+" if quote["change"] > 0 else "−"
    assert text_of(text, "data-trading-change") == f"{sign}{abs(quote['change']):,.2f} ({sign}{abs(quote['change_pct']):.2f}%)"
    assert f'class="trading-change {"up" if quote["change"] > 0 else "down"}"' in text


def test_a_symbol_page_always_says_the_data_is_simulated(alice: UserClient) -> None:
    assert "Simulated data" in page(alice, "/trading/AAPL")


def test_a_free_user_sees_that_prices_are_delayed_15_minutes(alice: UserClient) -> None:
    text = page(alice, "/trading/AAPL")
    assert text_of(text, "data-trading-tier") == "Delayed 15 min"
    assert "Real-time" not in text


def test_a_premium_user_sees_real_time_prices(app: Starlette, alice: UserClient) -> None:
    text = page(premium(app, alice), "/trading/AAPL")
    assert text_of(text, "data-trading-tier") == "Real-time"
    assert "Delayed 15 min" not in text


def test_a_symbol_page_says_whether_its_market_is_open(alice: UserClient, market: ScriptedMarket) -> None:
    market.set_open("AAPL", False)
    assert text_of(page(alice, "/trading/AAPL"), "data-trading-market") == "Market closed"
    market.set_open("AAPL", True)
    assert text_of(page(alice, "/trading/AAPL"), "data-trading-market") == "Market open"


def test_a_symbol_opens_in_any_case(alice: UserClient) -> None:
    assert '<h1 id="symbol-title">Bitcoin</h1>' in page(alice, "/trading/btc")


def test_an_unknown_symbol_is_the_sites_not_found_page(alice: UserClient) -> None:
    text = page(alice, "/trading/NOPE", status=404)
    assert "Page not found" in text and "There is no symbol" in text


@pytest.mark.parametrize("path", ["/trading", "/trading/TSLA", "/trading/portfolio"])
def test_an_anonymous_visitor_is_sent_to_log_in(client: TestClient, path: str) -> None:
    response = client.get(path, headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}"


def test_a_symbol_page_shows_the_key_figures(alice: UserClient) -> None:
    quote = alice.get("/api/trading/quotes/AAPL").json()
    text = page(alice, "/trading/AAPL")
    for label, field in [("Open", "open"), ("High", "high"), ("Low", "low"), ("Previous close", "previous_close")]:
        assert f'<dt>{label}</dt><dd data-field="{field}">{quote[field]:,.2f}</dd>' in text


def test_a_symbol_page_shows_the_52_week_range_from_the_years_bars(alice: UserClient) -> None:
    bars = alice.get("/api/trading/bars/AAPL", params={"range": "1Y"}).json()["bars"]
    text = page(alice, "/trading/AAPL")
    assert f"<dt>52-week high</dt><dd>{max(bar['h'] for bar in bars):,.2f}</dd>" in text
    assert f"<dt>52-week low</dt><dd>{min(bar['l'] for bar in bars):,.2f}</dd>" in text


def test_a_symbol_page_offers_the_chart_ranges_and_credits_the_chart_library(alice: UserClient) -> None:
    text = page(alice, "/trading/AAPL")
    assert re.findall(r'data-range="(\w+)" aria-pressed', text) == ["1D", "5D", "1M", "1Y"]
    assert 'href="https://www.tradingview.com/"' in text and "TradingView Lightweight Charts" in text


def test_a_symbol_page_offers_watch_and_unwatch_once_watched(alice: UserClient) -> None:
    assert text_of(page(alice, "/trading/AAPL"), "data-trading-watch") == "Watch"
    assert alice.put("/api/trading/watchlist/AAPL").status_code == 201
    assert text_of(page(alice, "/trading/AAPL"), "data-trading-watch") == "Unwatch"


def test_a_symbol_page_shows_buying_power_and_no_position_before_trading(alice: UserClient) -> None:
    text = page(alice, "/trading/BTC")
    assert text_of(text, "data-trading-buying-power") == "$100,000.00"
    assert text_of(text, "data-trading-position") == "None"


def test_a_symbol_page_shows_your_position_in_that_symbol(alice: UserClient, market: ScriptedMarket) -> None:
    market.set_price("BTC", 100.0)
    order(alice, symbol="BTC", qty="2.5")
    text = page(alice, "/trading/BTC")
    assert text_of(text, "data-trading-position") == "2.5 BTC · $250.00"
    assert text_of(text, "data-trading-buying-power") == "$99,750.00"


def test_a_symbol_page_has_a_trade_panel_with_every_order_choice(alice: UserClient) -> None:
    text = page(alice, "/trading/TSLA")
    assert 'id="trade"' in text
    assert re.findall(r'name="side" value="(\w+)"', text) == ["buy", "sell"]
    assert re.findall(r'<option value="(\w+)">', text) == ["market", "limit", "stop", "day", "gtc"]
    assert '<label for="order-qty">Quantity' in text and 'inputmode="decimal"' in text


# The markets home ---------------------------------------------------------------------------------


def test_the_navigation_offers_markets_to_signed_in_users(alice: UserClient) -> None:
    assert '<a href="/trading">Markets</a>' in page(alice, "/")


def test_the_markets_page_lists_the_watchlist_in_the_order_added(alice: UserClient) -> None:
    for symbol in ("TSLA", "BTC", "AAPL"):
        assert alice.put(f"/api/trading/watchlist/{symbol}").status_code == 201
    text = page(alice, "/trading")
    watchlist = text.split("data-trading-watchlist", 1)[1].split("</ul>", 1)[0]
    assert re.findall(r'data-quote-row data-symbol="(\w+)"', watchlist) == ["TSLA", "BTC", "AAPL"]


def test_the_markets_page_says_when_nothing_is_watched(alice: UserClient) -> None:
    assert "You aren't watching anything yet." in page(alice, "/trading")


def test_the_markets_page_lists_every_asset_by_class(alice: UserClient, market: ScriptedMarket) -> None:
    text = page(alice, "/trading")
    for title in ("Stocks", "Index funds", "Crypto"):
        assert f">{title}</h2>" in text
    listed = set(re.findall(r'data-quote-row data-symbol="(\w+)"', text))
    assert listed == {asset.symbol for asset in market.assets()}


def test_the_markets_page_searches_symbols_without_javascript(alice: UserClient) -> None:
    text = page(alice, "/trading?q=tesla")
    assert '<a href="/trading/TSLA"><strong>TSLA</strong> <span class="muted">Tesla, Inc. · NASDAQ</span></a>' in text


def test_the_markets_page_says_when_no_symbol_matches(alice: UserClient) -> None:
    assert "No symbol matches “zzzz”." in page(alice, "/trading?q=zzzz")


# The portfolio ---------------------------------------------------------------------------------


def test_the_portfolio_shows_equity_cash_and_buying_power(alice: UserClient, market: ScriptedMarket) -> None:
    market.set_price("AAPL", 200.0)
    order(alice, symbol="AAPL", qty="10")
    order(alice, symbol="AAPL", qty="1", type="limit", limit_price="150", time_in_force="gtc")
    text = page(alice, "/trading/portfolio")
    assert text_of(text, 'data-account="cash"') == "$98,000.00"
    assert text_of(text, 'data-account="buying_power"') == "$97,850.00"
    assert text_of(text, 'data-account="positions_value"') == "$2,000.00"
    assert text_of(text, 'data-account="equity"') == "$100,000.00"


def test_the_portfolio_shows_positions_with_profit_and_loss(alice: UserClient, market: ScriptedMarket) -> None:
    market.set_price("BTC", 100.0)
    order(alice, symbol="BTC", qty="2")
    market.set_price("BTC", 110.0)
    row = page(alice, "/trading/portfolio").split('data-position="BTC"', 1)[1].split("</li>", 1)[0]
    assert "2 at 100.00" in row
    assert "$220.00" in row
    assert '<span class="cashtag-change up">$20.00 (+10.00%)</span>' in row


def test_the_portfolio_lists_open_orders_with_a_cancel_button(alice: UserClient, market: ScriptedMarket) -> None:
    market.set_price("AAPL", 200.0)
    placed = order(alice, symbol="AAPL", qty="1", type="limit", limit_price="150", time_in_force="gtc")
    text = page(alice, "/trading/portfolio")
    row = text.split(f'data-order="{placed["id"]}"', 1)[1].split("</li>", 1)[0]
    assert "Buy 1 " in row and "· Limit at 150.00 · GTC" in row
    assert f'data-cancel-order="{placed["id"]}"' in row and ">Cancel</button>" in row


def test_the_portfolio_lists_recent_closed_orders(alice: UserClient, market: ScriptedMarket) -> None:
    market.set_price("AAPL", 200.0)
    filled = order(alice, symbol="AAPL", qty="1")
    canceled = order(alice, symbol="AAPL", qty="1", type="limit", limit_price="150")
    assert alice.delete(f"/api/trading/orders/{canceled['id']}").status_code == 200
    text = page(alice, "/trading/portfolio")
    assert "No open orders." in text
    filled_row = text.split(f'data-closed-order="{filled["id"]}"', 1)[1].split("</li>", 1)[0]
    assert "Filled" in filled_row and "at 200.00 · $200.00" in filled_row
    assert "Cancelled" in text.split(f'data-closed-order="{canceled["id"]}"', 1)[1].split("</li>", 1)[0]


# Assets ----------------------------------------------------------------------------------------------


def test_the_stylesheet_is_on_every_page_and_the_scripts_only_on_trading_pages(alice: UserClient) -> None:
    home = page(alice, "/")
    assert '<link rel="stylesheet" href="/static/plugins/trading/trading.css">' in home
    assert "trading.js" not in home and "lightweight-charts" not in home
    symbol = page(alice, "/trading/TSLA")
    chart = symbol.index("/static/plugins/trading/vendor/lightweight-charts.standalone.production.js")
    assert chart < symbol.index("/static/plugins/trading/trading.js")


def test_the_chart_library_and_its_licence_are_served_from_the_site(alice: UserClient) -> None:
    script = alice.get("/static/plugins/trading/vendor/lightweight-charts.standalone.production.js")
    assert script.status_code == 200 and "LightweightCharts" in script.text
    assert alice.get("/static/plugins/trading/trading.js").status_code == 200
    assert alice.get("/static/plugins/trading/trading.css").status_code == 200


def test_the_symbol_page_shows_the_newest_posts_mentioning_it(alice: UserClient) -> None:
    for text in ("First on $AAPL", "Second on $aapl", "Nothing on $MSFT"):
        assert alice.post("/api/feed/posts", json={"text": text}).status_code == 201
    text = alice.get("/trading/AAPL", headers=HTML).text
    section = text[text.index("Posts mentioning $AAPL"):]
    assert section.index("Second on") < section.index("First on") and "Nothing on" not in section
    assert 'href="/feed/cashtags/AAPL"' in section


def test_the_symbol_page_says_when_no_post_mentions_it(alice: UserClient) -> None:
    assert "No posts mention $NVDA yet." in alice.get("/trading/NVDA", headers=HTML).text
