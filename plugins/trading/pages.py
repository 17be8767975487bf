"""The trading pages under ``/trading``.

- ``/trading`` is the markets home: one's watchlist with live prices, a
  symbol search (``?q=`` works without JavaScript too), the day's biggest
  movers and every asset grouped by class.
- ``/trading/portfolio`` is the paper account: cash, buying power and
  equity, positions with their profit and loss, open orders (with Cancel)
  and recent closed ones.
- ``/trading/{symbol}`` (any case) is one symbol: its quote, a chart, key
  figures, Watch/Unwatch and a trade panel.

Every figure is drawn here so that the pages read without JavaScript;
``static/trading.js`` keeps them live over the realtime channel
(``trading.subscribe``) and talks to the JSON API for the buttons. Every
page says the prices are simulated, and delayed when they are.
"""

from __future__ import annotations

from typing import Any, Protocol

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import NavItem, Page, PluginState, User, current_user, login_redirect, render
from plugins.trading.api import trading_of
from plugins.trading.assets import CRYPTO, FUND, STOCK
from plugins.trading.market import RANGES
from plugins.trading.quotes import Tier
from plugins.trading.service import Trading

STATIC = "/static/plugins/trading"
CHART = f"{STATIC}/vendor/lightweight-charts.standalone.production.js"
# How many posts mentioning the symbol its page shows; the feed's cashtag page has the rest.
MENTIONING_POSTS = 5


class CashtagPosts(Protocol):
    """What trading uses of the feed plugin's public service: its cashtag index."""

    def by_cashtag(self, viewer: User | None, symbol: str, cursor: str | None, limit: int) -> Page: ...


# The feed's service, when the feed runs: plugins cooperate without importing each other.
FEED: PluginState[CashtagPosts] = PluginState("feed")
CLASS_TITLES = {STOCK: "Stocks", FUND: "Index funds", CRYPTO: "Crypto"}
MOVERS = 5
CLOSED_ORDERS = 20
SEARCH_MAX = 64


# Hooks' helpers -----------------------------------------------------------------------------


def nav_items(user: User | None) -> list[NavItem]:
    """The navigation's "Markets" item, for signed-in users (every trading page needs an account)."""
    if user is None:
        return []
    return [NavItem("Markets", "/trading", order=55, requires_login=True)]


def page_assets(request: Request, user: User | None) -> list[str]:
    """The stylesheet on every page (cashtag chips and widgets sit in posts anywhere); the scripts on trading pages only."""
    assets = [f"{STATIC}/trading.css"]
    path = request.url.path
    if user is not None and (path == "/trading" or path.startswith("/trading/")):
        # The chart library first: trading.js draws with it, and deferred scripts run in order.
        assets += [CHART, f"{STATIC}/trading.js"]
    return assets


# Formatting, for the templates ------------------------------------------------------------------


def money(cents: int | None) -> str:
    """Cents as dollars: ``123456`` → ``$1,234.56``, ``-500`` → ``−$5.00``."""
    if cents is None:
        return "—"
    sign = "−" if cents < 0 else ""
    return f"{sign}${abs(cents) / 100:,.2f}"


def price(value: float | None) -> str:
    """A price in dollars, with as many decimals as it needs (DOGE at 0.1234 keeps four)."""
    if value is None:
        return "—"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:,.6f}".rstrip("0").ljust(len(f"{value:.4f}"), "0")


def signed(value: float, decimals: int = 2) -> str:
    """A change with its sign: ``+1.23``, ``−0.50``."""
    sign = "+" if value > 0 else "−" if value < 0 else ""
    return f"{sign}{abs(value):,.{decimals}f}"


def direction(value: float | int | None) -> str:
    """The CSS class of a change: ``up``, ``down`` or ``flat``."""
    if not value:
        return "flat"
    return "up" if value > 0 else "down"


FORMATS = {"money": money, "price": price, "signed": signed, "direction": direction}


def _render(request: Request, template: str, context: dict[str, Any]) -> Response:
    return render(request, template, {**FORMATS, **context})


# The markets home ---------------------------------------------------------------------------------


def _markets(trading: Trading, user: User, query: str) -> dict[str, Any]:
    """Everything the markets home shows (blocking: quotes and the database)."""
    tier = trading.quotes.tier(user)
    watchlist = trading.watchlist_quotes(user)
    quotes = [trading.quotes.quote(asset.symbol, tier) for asset in trading.market.assets()]
    by_change = sorted(quotes, key=lambda quote: quote["change_pct"])
    groups = [(title, [q for q in quotes if q["asset_class"] == key]) for key, title in CLASS_TITLES.items()]
    return {
        "watchlist": watchlist,
        "gainers": [q for q in reversed(by_change[-MOVERS:]) if q["change_pct"] > 0],
        "losers": [q for q in by_change[:MOVERS] if q["change_pct"] < 0],
        "groups": [(title, found) for title, found in groups if found],
        "query": query,
        "results": trading.quotes.search(query, 20) if query else None,
        "tier": tier,
    }


async def markets_page(request: Request) -> Response:
    """``GET /trading``: the watchlist, a symbol search (``?q=``), movers and every asset by class."""
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request)
    query = (request.query_params.get("q") or "").strip()[:SEARCH_MAX]
    context = await anyio.to_thread.run_sync(_markets, trading_of(request), viewer, query)
    return _render(request, "trading/markets.html", context)


# The portfolio --------------------------------------------------------------------------------------


def _portfolio(trading: Trading, user: User) -> dict[str, Any]:
    broker = trading.broker
    account, held = broker.holdings(user)
    return {
        "account": account,
        "positions": held,
        "open_orders": broker.orders(user, "open", 100),
        "closed_orders": broker.orders(user, "closed", CLOSED_ORDERS),
        "delay_minutes": trading.settings.delay_minutes,
    }


async def portfolio_page(request: Request) -> Response:
    """``GET /trading/portfolio``: the paper account, positions, open orders and recent closed ones."""
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request)
    context = await anyio.to_thread.run_sync(_portfolio, trading_of(request), viewer)
    return _render(request, "trading/portfolio.html", context)


# One symbol -------------------------------------------------------------------------------------------


def year_range(trading: Trading, symbol: str, tier: Tier) -> tuple[float, float] | None:
    """The 52-week low and high from the year's daily bars, or None without history."""
    bars = trading.quotes.bars(symbol, "1Y", tier)["bars"]
    if not bars:
        return None
    return min(bar["l"] for bar in bars), max(bar["h"] for bar in bars)


def _symbol(trading: Trading, user: User, raw: str) -> dict[str, Any]:
    """Everything the symbol page shows (blocking); 404 ``unknown_symbol`` for a symbol that does not exist."""
    asset = trading.quotes.asset(raw)
    tier = trading.quotes.tier(user)
    quote = trading.quotes.quote(asset.symbol, tier)
    account, held = trading.broker.holdings(user)
    position = next((p for p in held if p["symbol"] == asset.symbol), None)
    watched = asset.symbol in trading.watchlists.symbols(user)
    return {
        "posts": mentioning(trading, user, asset.symbol),
        "quote": quote,
        "year": year_range(trading, asset.symbol, tier),
        "account": account,
        "position": position,
        "watched": watched,
        "ranges": RANGES,
        "class_title": CLASS_TITLES.get(asset.asset_class, asset.asset_class),
        # The page's script starts from what was drawn here.
        "page_data": {"symbol": asset.symbol, "quote": quote, "account": account, "position": position, "watched": watched},
    }


def mentioning(trading: Trading, user: User, symbol: str) -> list[dict[str, Any]] | None:
    """The newest posts mentioning ``$symbol``, from the feed's cashtag index; None when the feed is not running.

    The feed is another plugin: trading runs without it, and asks it only when it runs.
    """
    feed = FEED.get(trading.kernel)
    if feed is None:
        return None
    return list(feed.by_cashtag(user, symbol, None, MENTIONING_POSTS).results)


async def symbol_page(request: Request) -> Response:
    """``GET /trading/{symbol}``: a symbol's quote, chart, key figures, Watch and the trade panel."""
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request)
    context = await anyio.to_thread.run_sync(_symbol, trading_of(request), viewer, request.path_params["symbol"])
    return _render(request, "trading/symbol.html", context)


routes = [
    Route("/trading", markets_page, methods=["GET"]),
    Route("/trading/", markets_page, methods=["GET"]),
    Route("/trading/portfolio", portfolio_page, methods=["GET"]),
    Route("/trading/{symbol}", symbol_page, methods=["GET"]),
]
