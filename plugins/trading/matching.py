"""When an order fills, and at what price: the rules alone, with no database and no clock.

Amounts are integers: quantities in millionths of a share or coin
(``qty_micro``), prices in millionths of a dollar (``price_micro``), money in
cents. A limit order fills once the price reaches its limit (a buy at or
below it, a sell at or above it) at the market price, which is never worse
than the limit; a stop order becomes a market order once the price reaches
its stop (a buy at or above it, a sell at or below it); a market order fills
at the market price. Orders fill only while their market is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

MICRO = 1_000_000
BUY, SELL = "buy", "sell"
MARKET, LIMIT, STOP = "market", "limit", "stop"


@dataclass(frozen=True)
class OrderTerms:
    """What an order asks for."""

    side: str
    type: str
    qty_micro: int
    limit_micro: int | None = None
    stop_micro: int | None = None


def fill_price(terms: OrderTerms, price_micro: int) -> int | None:
    """The price ``terms`` fill at when the market stands at ``price_micro``, or None when they do not fill yet."""
    if terms.type == MARKET:
        return price_micro
    if terms.type == LIMIT:
        assert terms.limit_micro is not None
        reached = price_micro <= terms.limit_micro if terms.side == BUY else price_micro >= terms.limit_micro
        return price_micro if reached else None
    if terms.type == STOP:
        assert terms.stop_micro is not None
        triggered = price_micro >= terms.stop_micro if terms.side == BUY else price_micro <= terms.stop_micro
        return price_micro if triggered else None
    raise ValueError(terms.type)


def notional_cents(qty_micro: int, price_micro: int, side: str) -> int:
    """What ``qty_micro`` at ``price_micro`` costs (a buy, rounded up to the cent) or brings (a sell, rounded down)."""
    exact = Decimal(qty_micro) * Decimal(price_micro) / Decimal(MICRO * MICRO) * 100
    return int(exact.to_integral_value(ROUND_CEILING if side == BUY else ROUND_FLOOR))


def reserve_cents(terms: OrderTerms, price_micro: int) -> int:
    """The buying power an open buy order holds: its quantity at its limit, its stop, or (market) the price now."""
    if terms.side != BUY:
        return 0
    price = terms.limit_micro if terms.type == LIMIT else terms.stop_micro if terms.type == STOP else price_micro
    assert price is not None
    return notional_cents(terms.qty_micro, price, BUY)


def to_micro(value: Decimal) -> int:
    """A decimal amount (shares or dollars) in millionths; ValueError past six decimals."""
    scaled = value * MICRO
    if scaled != scaled.to_integral_value():
        raise ValueError("at most six decimals")
    return int(scaled)


def from_micro(value: int) -> str:
    """Millionths as a plain decimal string without trailing zeros (``1500000`` → ``"1.5"``)."""
    text = format(Decimal(value) / MICRO, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
