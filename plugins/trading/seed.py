"""Trading's part of the sandbox's demo world: watchlists that fit each person, and paper accounts with positions.

Everything goes through the plugin's own services, as a request would:
:meth:`Trading.watch` for watchlists and :meth:`PaperBroker.place` for
orders. Fills are therefore real fills at the market provider's price of
the moment. Crypto trades around the clock, so its market orders fill at
once. A stock's market order fills at once only while its exchange is open;
while it is closed the broker keeps the order open and the matcher fills it
at the next open (the broker has, on purpose, no way to fill at the last
price while closed), so on a weekend the stock buys are honest open orders
and the positions are crypto. A couple of limit orders below the price are
left open too, so the orders page has something to cancel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import anyio.to_thread

from kernel import ApiError, Kernel, SandboxWorld, User
from plugins.trading.assets import CRYPTO
from plugins.trading.paper import FILLED, OPEN, OrderRequest
from plugins.trading.service import TRADING, Trading

log = logging.getLogger("everything.trading")

# Symbols that fit an interest that is not itself a symbol (a baker watches food, a nurse health care).
RELATED: dict[str, tuple[str, ...]] = {
    "design": ("ADBE",),
    "coffee": ("SBUX",),
    "music": ("SPOT",),
    "community": ("SPY",),
    "ai": ("AMD", "TSM", "MSFT"),
    "football": ("NKE",),
    "podcasts": ("SPOT", "AAPL"),
    "food": ("COST", "PEP"),
    "fintech": ("V", "MA", "COIN"),
    "cycling": ("UBER",),
    "photography": ("SONY", "ADBE"),
    "climate": ("XOM", "TSLA"),
    "data": ("SNOW",),
    "gaming": ("SONY", "NVDA", "AMD"),
    "economics": ("JPM",),
    "jazz": ("SPOT",),
    "chess": ("MSFT",),
    "health": ("JNJ", "UNH", "LLY"),
}
# What anyone might add once their own picks run out.
POPULAR = ("SPY", "AAPL", "BTC", "QQQ", "ETH", "MSFT", "AMZN")
COINS = ("BTC", "ETH")
# Not everyone trades: these logins show what a newcomer sees (an empty watchlist, a fresh paper account).
NOT_TRADING = ("lucas_b", "grace_ho")
# The part of the starting cash the seeded buys may spend, so that a stock order waiting for the open
# still fills if the price opens higher (the broker cancels a buy the account cannot pay for).
SPEND = Decimal("0.5")


@dataclass(frozen=True)
class Limit:
    """An open limit buy: ``below`` the price by this fraction, so that it waits."""

    username: str
    symbol: str
    dollars: int
    below: Decimal


LIMITS: tuple[Limit, ...] = (
    Limit("omar_h", "BTC", 4000, Decimal("0.08")),
    Limit("maya_chen", "AAPL", 3000, Decimal("0.05")),
)


@dataclass
class _Tally:
    """What was seeded, for the note."""

    watchlists: int = 0
    filled: int = 0
    waiting: int = 0
    limits: int = 0
    holders: int = 0


async def seed(kernel: Kernel, world: SandboxWorld) -> None:
    """Watchlists and paper positions for most of the human cast; then a note of what was seeded."""
    trading = TRADING.of(kernel)
    tally = _Tally()
    traders = [person for person in world.humans if person.username in world.users and person.username not in NOT_TRADING]
    budget = Decimal(trading.settings.starting_cash) / 100 * SPEND
    for person in traders:
        user = world.user(person.username)
        # The provider may block (a real one asks the network): everything that asks it runs off the loop.
        symbols, buys = await anyio.to_thread.run_sync(_choose, trading, world, person.interests)
        watched = [symbol for symbol in symbols if await _watch(trading, user, symbol)]
        tally.watchlists += bool(watched)
        statuses = []
        for symbol in buys:
            # Each of up to five buys (a first pick, three coins, one more) stays inside a fifth of the budget.
            dollars = min(Decimal(world.random.randint(15, 90) * 100), budget / 5)
            request = await anyio.to_thread.run_sync(_market_buy, trading, symbol, dollars)
            order = await _place(trading, user, request) if request is not None else None
            if order is not None:
                statuses.append(order["status"])
        tally.filled += statuses.count(FILLED)
        tally.waiting += statuses.count(OPEN)
        tally.holders += FILLED in statuses
    for limit in LIMITS:
        if limit.username in world.users and limit.username not in NOT_TRADING:
            request = await anyio.to_thread.run_sync(_limit_buy, trading, limit)
            order = await _place(trading, world.user(limit.username), request) if request is not None else None
            tally.limits += order is not None and order["status"] == OPEN
    _note(world, tally, trading.market.simulated)


def _choose(trading: Trading, world: SandboxWorld, interests: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """A person's watchlist, and what they buy from it (blocking: asks the provider which symbols it knows)."""
    symbols = _watchlist(trading, world, interests)
    return symbols, _buys(trading, world, symbols)


def _watchlist(trading: Trading, world: SandboxWorld, interests: tuple[str, ...]) -> list[str]:
    """3 to 6 symbols the market knows: the person's own tickers, then ones near their other interests, a coin, popular ones.

    Nearly everyone keeps an eye on a coin: crypto is what fills at once on a weekend, so it is what most seeded
    positions hold whatever the day.
    """
    known = trading.market.asset
    own = [interest.upper() for interest in interests if known(interest.upper()) is not None]
    near = [symbol for interest in interests for symbol in RELATED.get(interest, ()) if known(symbol) is not None]
    size = world.random.randint(3, 6)
    picks = list(dict.fromkeys(own + near))
    if not any(_is_coin(trading, symbol) for symbol in picks):
        coins = [symbol for symbol in COINS if known(symbol) is not None]
        picks = picks[: size - 1] + ([world.random.choice(coins)] if coins else [])
    extra = [symbol for symbol in POPULAR if symbol not in picks and known(symbol) is not None]
    world.random.shuffle(extra)
    return (picks + extra)[:size]


def _is_coin(trading: Trading, symbol: str) -> bool:
    asset = trading.market.asset(symbol)
    return asset is not None and asset.asset_class == CRYPTO


def _buys(trading: Trading, world: SandboxWorld, symbols: list[str]) -> list[str]:
    """What a person holds: their first pick, the coins they watch, and maybe one more from their watchlist."""
    if not symbols:
        return []
    coins = [symbol for symbol in symbols if _is_coin(trading, symbol)][:3]
    chosen = list(dict.fromkeys([symbols[0], *coins]))
    rest = [symbol for symbol in symbols if symbol not in chosen]
    return chosen + world.random.sample(rest, min(len(rest), world.random.randint(0, 1)))


def _quantity(trading: Trading, symbol: str, dollars: Decimal, price: Decimal) -> Decimal:
    """How much ``dollars`` buys at ``price``: coins in fractions (whole ones for the cheap coins), shares whole."""
    if _is_coin(trading, symbol):
        return (dollars / price).quantize(Decimal("0.0001") if price > 1 else Decimal(1), ROUND_FLOOR)
    return Decimal(int(dollars / price))


def _market_buy(trading: Trading, symbol: str, dollars: Decimal) -> OrderRequest | None:
    """A market buy of about ``dollars`` at the price of the moment (blocking: asks the provider)."""
    price = Decimal(str(trading.market.quote(symbol, datetime.now(UTC)).price))
    qty = _quantity(trading, symbol, dollars, price)
    return OrderRequest(symbol=symbol, side="buy", qty=qty, type="market", time_in_force="day") if qty > 0 else None


def _limit_buy(trading: Trading, limit: Limit) -> OrderRequest | None:
    """A limit buy under the price of the moment, good until cancelled, so that it waits (blocking)."""
    if trading.market.asset(limit.symbol) is None:
        return None
    price = Decimal(str(trading.market.quote(limit.symbol, datetime.now(UTC)).price))
    limit_price = (price * (1 - limit.below)).quantize(Decimal("0.01"), ROUND_FLOOR)
    qty = _quantity(trading, limit.symbol, Decimal(limit.dollars), limit_price)
    if qty <= 0:
        return None
    return OrderRequest(symbol=limit.symbol, side="buy", qty=qty, type="limit", time_in_force="gtc", limit_price=limit_price)


async def _watch(trading: Trading, user: User, symbol: str) -> bool:
    """Add ``symbol`` to ``user``'s watchlist, as ``PUT /api/trading/watchlist/{symbol}`` does; whether it was added."""
    try:
        added, _quote = await anyio.to_thread.run_sync(trading.watch, user, symbol)
    except ApiError as error:
        log.warning("sandbox: trading refused @%s watching %s: %s", user.username, symbol, error)
        return False
    return added


async def _place(trading: Trading, user: User, request: OrderRequest) -> dict[str, Any] | None:
    """Place an order, as ``POST /api/trading/orders`` does; the order, or None when the broker refused it."""
    try:
        _created, order = await anyio.to_thread.run_sync(trading.broker.place, user, request)
    except ApiError as error:
        log.warning("sandbox: trading refused @%s's order %r: %s", user.username, request, error)
        return None
    return order


def _note(world: SandboxWorld, tally: _Tally, simulated: bool) -> None:
    parts = [
        f"trading: {tally.watchlists} watchlists",
        f"{tally.filled} paper fills{' at simulated prices' if simulated else ''} ({tally.holders} people hold positions)",
    ]
    if tally.waiting:
        parts.append(f"{tally.waiting} stock buys waiting for the market to open")
    parts.append(f"{tally.limits} open limit orders")
    world.note(", ".join(parts))
