"""``everything payments accrue-interest [--day YYYY-MM-DD]``: the hourly interest job, by hand."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import TYPE_CHECKING

from kernel import utcnow
from plugins.payments.service import PAYMENTS

if TYPE_CHECKING:
    from kernel import Kernel

HELP = "pay savings interest for one day (--day), or for every ended day that is due, as the hourly job does"


def arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--day``."""
    parser.add_argument("--day", type=_day, help="the UTC day to accrue, YYYY-MM-DD (default: the days the hourly job would)")


def run(kernel: Kernel, args: argparse.Namespace) -> int:
    """Accrue and say how many accounts earned interest; 2 for a day that has not begun. Safe to repeat."""
    savings = PAYMENTS.of(kernel).savings
    if savings.settings.savings_rate == 0:
        print("savings_rate is 0: no interest to pay ([plugins.payments] savings_rate)", file=sys.stderr)
        return 0
    try:
        accrued = savings.accrue_interest(args.day) if args.day else savings.accrue_due(utcnow().date())
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    scope = f"for {args.day.isoformat()}" if args.day else "for the days due"
    print(f"accrued interest on {accrued} savings account(s) {scope}", file=sys.stderr)
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a day as YYYY-MM-DD") from None
