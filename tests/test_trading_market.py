"""The simulated market: deterministic prices, stock market hours, round-the-clock crypto, and history bars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kernel import create_app
from plugins.trading.assets import ASSETS
from plugins.trading.service import TRADING
from plugins.trading.simulated import SimulatedMarket
from tests.conftest import make_settings, running

# Wednesday 2026-11-18: New York is at UTC-5.
WEDNESDAY_NOON_NY = datetime(2026, 11, 18, 17, 0, tzinfo=UTC)
WEDNESDAY_EVENING_NY = datetime(2026, 11, 18, 23, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 21, 17, 0, tzinfo=UTC)


def test_the_built_in_list_has_at_least_40_assets_of_every_class() -> None:
    assert len(ASSETS) >= 40
    assert {asset.asset_class for asset in ASSETS} == {"stock", "etf", "crypto"}
    assert len({asset.symbol for asset in ASSETS}) == len(ASSETS)


def test_the_same_seed_gives_the_same_prices() -> None:
    first, second = SimulatedMarket(seed=7), SimulatedMarket(seed=7)
    for symbol in ("AAPL", "BTC", "DOGE"):
        assert first.quote(symbol, WEDNESDAY_NOON_NY) == second.quote(symbol, WEDNESDAY_NOON_NY)
        assert first.bars(symbol, "1M", WEDNESDAY_NOON_NY) == second.bars(symbol, "1M", WEDNESDAY_NOON_NY)


def test_another_seed_gives_other_prices() -> None:
    assert SimulatedMarket(seed=1).price("TSLA", WEDNESDAY_NOON_NY) != SimulatedMarket(seed=2).price("TSLA", WEDNESDAY_NOON_NY)


def test_a_stock_moves_during_its_session_and_stands_still_outside_it() -> None:
    market = SimulatedMarket()
    during = [market.price("AAPL", WEDNESDAY_NOON_NY + timedelta(minutes=m)) for m in range(0, 60, 5)]
    assert len(set(during)) > 5
    after_close = [market.price("AAPL", WEDNESDAY_EVENING_NY + timedelta(hours=h)) for h in range(0, 12)]
    assert len(set(after_close)) == 1
    assert market.price("AAPL", SATURDAY) == market.price("AAPL", datetime(2026, 11, 20, 22, 0, tzinfo=UTC))  # Friday's close


def test_crypto_moves_around_the_clock() -> None:
    market = SimulatedMarket()
    weekend = [market.price("BTC", SATURDAY + timedelta(minutes=m)) for m in range(0, 60, 5)]
    assert len(set(weekend)) > 5
    assert market.market_open("BTC", SATURDAY)


def test_market_hours_follow_new_york() -> None:
    market = SimulatedMarket()
    assert market.market_open("AAPL", WEDNESDAY_NOON_NY)
    assert not market.market_open("AAPL", WEDNESDAY_EVENING_NY)
    assert not market.market_open("AAPL", SATURDAY)
    assert market.market_open("AAPL", datetime(2026, 7, 15, 13, 30, tzinfo=UTC))  # 9:30 in summer time (UTC-4)
    assert not market.market_open("AAPL", datetime(2026, 7, 15, 13, 29, tzinfo=UTC))


def test_a_quote_measures_the_day_from_the_previous_close() -> None:
    quote = SimulatedMarket().quote("MSFT", WEDNESDAY_NOON_NY)
    assert quote.change == pytest.approx(quote.price - quote.previous_close)
    assert quote.low <= quote.price <= quote.high
    assert quote.low <= quote.previous_close <= quote.high


@pytest.mark.parametrize(("range_", "low", "high"), [("1D", 30, 80), ("5D", 50, 66), ("1M", 19, 24), ("1Y", 245, 262)])
def test_stock_bars_cover_their_range(range_: str, low: int, high: int) -> None:
    bars = SimulatedMarket().bars("AAPL", range_, WEDNESDAY_NOON_NY)  # type: ignore[arg-type]
    assert low <= len(bars) <= high
    assert all(bar.low <= min(bar.open, bar.close) and bar.high >= max(bar.open, bar.close) for bar in bars)
    assert [bar.start for bar in bars] == sorted(bar.start for bar in bars)


def test_the_last_bar_closes_at_the_quoted_price() -> None:
    market = SimulatedMarket()
    for symbol in ("AAPL", "ETH"):
        assert market.bars(symbol, "1D", WEDNESDAY_NOON_NY)[-1].close == market.quote(symbol, WEDNESDAY_NOON_NY).price


def test_search_puts_the_exact_symbol_first_then_prefixes_then_names() -> None:
    market = SimulatedMarket()
    assert [a.symbol for a in market.search("T", 3)][0] == "T"
    assert "TSLA" in [a.symbol for a in market.search("t", 10)]
    assert [a.symbol for a in market.search("bitcoin", 5)] == ["BTC", "BCH"]  # Bitcoin, Bitcoin Cash
    assert [a.symbol for a in market.search("$eth", 5)][0] == "ETH"
    assert market.search("nothing like it", 5) == []


def test_an_operator_plugs_in_another_provider_through_the_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", plugins={"trading": {"provider": "tests.trading_kit:ScriptedMarket"}})
    app = create_app(settings)
    with running(app):
        assert type(TRADING.of(app.state.kernel).market).__name__ == "ScriptedMarket"


def test_a_provider_that_cannot_be_loaded_turns_the_plugin_off_with_the_reason(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", plugins={"trading": {"provider": "no_such_package.market:factory"}})
    app = create_app(settings)
    with running(app):
        record = app.state.kernel.plugins.records["trading"]
        assert record.state != "on"
        assert "plugins.trading.provider" in record.reason
