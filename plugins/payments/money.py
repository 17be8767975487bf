"""Amounts as people read them. Every amount in the plugin is an integer in the currency's minor unit."""

from __future__ import annotations

import re

from kernel import ApiError


def money(amount: int, currency: str) -> str:
    """``1234`` USD as ``$12.34``, ``-1234`` as ``-$12.34``; other currencies as ``12.34 EUR``."""
    sign, amount = ("-", -amount) if amount < 0 else ("", amount)
    whole = f"{amount // 100:,}.{amount % 100:02d}"
    return f"{sign}${whole}" if currency == "USD" else f"{sign}{whole} {currency}"


_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_PLAIN = re.compile(r"\d*(?:\.\d*)?")
_DECIMAL_COMMA = re.compile(r"\d+,\d{1,2}")
_SYMBOLS = "$€£¥"


def parse_amount(text: str | None, currency: str = "USD") -> int:
    """An amount typed by a person (``12.50``, ``$12.5``, ``1,200``, ``12,50``) in integer minor units.

    Raises 422 ``validation_error`` on the ``amount`` field, in words a person
    understands, for anything else: empty, not a number, negative, zero, or
    more than two digits after the point.
    """
    raw = "".join((text or "").split())
    if raw.upper().endswith(currency):
        raw = raw[: -len(currency)]
    if raw[:1] in _SYMBOLS and raw:
        raw = raw[1:]
    if raw.startswith("-"):
        raise _amount_error("Enter an amount above zero.")
    if not raw:
        raise _amount_error("Enter an amount, such as 12.50.")
    if _DECIMAL_COMMA.fullmatch(raw):
        raw = raw.replace(",", ".")
    elif _GROUPED.fullmatch(raw):
        raw = raw.replace(",", "")
    if not _PLAIN.fullmatch(raw) or not any(char.isdigit() for char in raw):
        raise _amount_error("Enter the amount as a number, such as 12.50.")
    whole, _, cents = raw.partition(".")
    if len(cents) > 2:
        raise _amount_error("Use at most two digits after the point, such as 12.50.")
    if len(whole) > 12:
        raise _amount_error("That amount is too large.")
    amount = int(whole or "0") * 100 + int(cents.ljust(2, "0"))
    if amount <= 0:
        raise _amount_error("Enter an amount above zero.")
    return amount


def _amount_error(message: str) -> ApiError:
    return ApiError(422, "validation_error", message, field="amount")
