"""In real Chromium: a symbol's page charts, ticks, watches and trades; every trading page fits a phone.

BTC is the symbol because crypto trades around the clock in the simulated
market, so its price moves whenever the test runs, weekends included.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from kernel.settings import Settings
from tests.browser_kit import BROWSER_MARKS, VIEWPORTS, assert_no_horizontal_scroll, signed_up
from tests.conftest import PASSWORD, LiveServer, make_settings

pytestmark = BROWSER_MARKS


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The embedded database only: the pages draw on services whose tests run on PostgreSQL too.
    return make_settings(tmp_path / "data")


def logged_in(browser: Any, server: LiveServer, device: str) -> tuple[Any, Any]:
    """A page of a new browser context, signed in as a new user through the log-in form; and that user's API client."""
    username = f"trader_{secrets.token_hex(3)}"
    client = signed_up(server.url, username, "Ada Trader")
    context = browser.new_context(base_url=server.url, **VIEWPORTS[device])
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return page, client


def chart_shows(page: Any, range_: str) -> None:
    """Wait until the chart draws ``range_`` with data, on a canvas."""
    page.wait_for_function(
        "r => { const c = document.querySelector('[data-trading-chart]');"
        " return c.dataset.range === r && Number(c.dataset.points) > 0 && c.querySelector('canvas') !== null; }",
        arg=range_,
    )


def test_the_btc_page_charts_ticks_watches_and_buys(browser: Any, live_server: LiveServer) -> None:
    page, api = logged_in(browser, live_server, "desktop")
    try:
        page.goto("/trading/BTC")
        assert page.get_by_role("heading", level=1).inner_text() == "Bitcoin"
        assert page.locator("[data-trading-tier]").inner_text() == "Delayed 15 min"
        assert page.get_by_text("Simulated data").first.is_visible()
        assert page.get_by_role("link", name="TradingView Lightweight Charts™").is_visible()

        # The chart draws the day, then each range asked for.
        chart_shows(page, "1D")
        for range_ in ("5D", "1Y", "1D"):
            page.get_by_role("group", name="Chart range").get_by_role("button", name=range_).click()
            chart_shows(page, range_)
            assert page.get_by_role("button", name=range_).get_attribute("aria-pressed") == "true"

        # The price ticks live: its moment moves on, and the day's line follows it.
        first = page.locator("[data-trading-asof]").get_attribute("datetime")
        page.wait_for_function("t => document.querySelector('[data-trading-asof]').getAttribute('datetime') !== t", arg=first)
        page.wait_for_function("() => document.querySelector('[data-trading-chart]').dataset.updated !== undefined")

        # Watch it.
        page.get_by_role("button", name="Watch").click()
        page.get_by_role("button", name="Unwatch").wait_for()
        assert [q["symbol"] for q in api.get("/api/trading/watchlist").json()["results"]] == ["BTC"]

        # A quantity the server refuses shows its message by the field, and places nothing.
        page.get_by_label("Quantity").fill("0.0000001")
        page.get_by_role("button", name="Buy BTC").click()
        error = page.locator("#order-qty-error")
        error.wait_for()
        assert "six decimals" in error.inner_text()
        assert page.get_by_label("Quantity").get_attribute("aria-invalid") == "true"

        # A market buy of 0.01 BTC, double-clicked: one order, and the position shows.
        page.get_by_label("Quantity").fill("0.01")
        page.get_by_role("button", name="Buy BTC").dblclick()
        done = page.locator("[data-trading-order-done]")
        done.wait_for()
        assert done.inner_text().startswith("Bought 0.01 BTC at ")
        page.wait_for_function("() => document.querySelector('[data-trading-position]').textContent.startsWith('0.01 BTC')")
        assert len(api.get("/api/trading/orders").json()["results"]) == 1
        assert [p["qty"] for p in api.get("/api/trading/positions").json()["results"]] == ["0.01"]
    finally:
        page.context.close()
        api.close()


def test_the_trading_pages_fit_a_phone(browser: Any, live_server: LiveServer) -> None:
    page, api = logged_in(browser, live_server, "phone")
    try:
        assert api.put("/api/trading/watchlist/BTC").status_code == 201
        bought = api.post("/api/trading/orders", json={"symbol": "ETH", "side": "buy", "qty": "0.5", "type": "market"})
        assert bought.status_code == 201, bought.text

        page.goto("/trading/BTC")
        chart_shows(page, "1D")
        assert_no_horizontal_scroll(page)

        # The markets home, from the navigation: the watchlist, and a search that answers as one types.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Markets").click()
        page.wait_for_url("**/trading")
        assert page.locator('[data-trading-watchlist] [data-symbol="BTC"]').is_visible()
        page.get_by_label("Search symbols").fill("tesla")
        page.locator("[data-trading-results]").get_by_role("link", name="TSLA").wait_for()
        assert_no_horizontal_scroll(page)

        page.goto("/trading/portfolio")
        assert page.locator('[data-position="ETH"]').is_visible()
        assert_no_horizontal_scroll(page)
    finally:
        page.context.close()
        api.close()
