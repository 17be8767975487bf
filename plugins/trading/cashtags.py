"""Cashtags: ``$TSLA`` in a post becomes a price chip, and the post's page gets a card with a small chart.

The chip comes through the kernel's ``text_entities`` hook, which knows
nothing of the reader: it shows the delayed quote (what everyone may see),
reused for a few seconds. The card comes through ``post_widgets`` and shows
the reader's own tier. A cashtag the market does not know stays plain text.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

from kernel import Kernel, ProfileSection, TextEntity, User
from plugins.trading.quotes import Quotes
from plugins.trading.service import TRADING

# A $ that does not follow a letter, digit or another $, then 1 to 6 letters that end a word: $TSLA, $btc.
CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6})\b")
MAX_CARDS = 3
SPARK_WIDTH, SPARK_HEIGHT = 120, 32


def known_cashtags(quotes: Quotes, text: str) -> list[tuple[int, int, str]]:
    """(start, end, symbol) of each cashtag in ``text`` that names a known asset."""
    found = []
    for match in CASHTAG.finditer(text):
        asset = quotes.market.asset(match.group(1).upper())
        if asset is not None:
            found.append((match.start(), match.end(), asset.symbol))
    return found


def change_class(change: float) -> str:
    return "up" if change >= 0 else "down"


def signed_pct(change_pct: float) -> str:
    """``+1.23%`` or ``−1.23%``, with a true minus sign, as the trading pages write it."""
    return f"{change_pct:+.2f}%".replace("-", "\u2212")


def price_text(price: float) -> str:
    return f"{price:,.2f}" if price >= 1 else f"{price:.4g}"


def chip_html(symbol: str, quote: dict[str, Any]) -> str:
    # The title says what the figures are, as every page and card does: simulated, and how late.
    note = ("Simulated data" if quote["simulated"] else "Market data") + (f", delayed {quote['delay_minutes']} min" if quote["delayed"] else "")
    return str(
        Markup(
            '<a class="cashtag" href="/trading/{s}" data-cashtag="{s}" title="{t}"><span class="cashtag-symbol">${s}</span> '
            '<span class="cashtag-price">{p}</span> <span class="cashtag-change {c}">{pct}</span></a>'
        ).format(
            s=symbol, t=note, p=price_text(quote["price"]), c=change_class(quote["change"]), pct=signed_pct(quote["change_pct"])
        )
    )


def text_entities(kernel: Kernel, text: str) -> list[TextEntity]:
    """Each known cashtag of ``text`` as a chip with its (delayed) price and day change."""
    if "$" not in text:
        return []
    quotes = TRADING.of(kernel).quotes
    entities = []
    for start, end, symbol in known_cashtags(quotes, text):
        quote = quotes.chip_quote(symbol)
        entities.append(
            TextEntity(
                start,
                end,
                "cashtag",
                href=f"/trading/{symbol}",
                html=chip_html(symbol, quote),
                data={"symbol": symbol, "price": quote["price"], "change_pct": quote["change_pct"]},
            )
        )
    return entities


def spark_points(closes: list[float]) -> str:
    """An SVG polyline's points drawing ``closes`` across the card's small chart."""
    if len(closes) < 2:
        return ""
    low, high = min(closes), max(closes)
    span = (high - low) or 1.0
    step = SPARK_WIDTH / (len(closes) - 1)
    return " ".join(
        f"{index * step:.1f},{SPARK_HEIGHT - 2 - (close - low) / span * (SPARK_HEIGHT - 4):.1f}" for index, close in enumerate(closes)
    )


def cards(kernel: Kernel, viewer: User | None, text: str) -> list[ProfileSection]:
    """A price card for each of the first known cashtags of a post, at the viewer's tier (blocking)."""
    quotes = TRADING.of(kernel).quotes
    symbols = list(dict.fromkeys(symbol for _, _, symbol in known_cashtags(quotes, text)))[:MAX_CARDS]
    if not symbols:
        return []
    tier = quotes.tier(viewer)
    found = []
    for order, symbol in enumerate(symbols):
        quote = quotes.quote(symbol, tier)
        closes = [bar["c"] for bar in quotes.bars(symbol, "1D", tier)["bars"]]
        context = {
            "quote": quote,
            "price": price_text(quote["price"]),
            "change": signed_pct(quote["change_pct"]),
            "direction": change_class(quote["change"]),
            "points": spark_points(closes),
            "width": SPARK_WIDTH,
            "height": SPARK_HEIGHT,
        }
        found.append(ProfileSection(f"${symbol} price", "trading/widget.html", context, order=200 + order))
    return found

