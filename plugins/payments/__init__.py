"""Payments: a wallet on a double-entry ledger and peer-to-peer transfers by username.

Subscriptions through Stripe, top-ups, payment requests, savings and the
pages come next (docs/payments.md says what is done).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kernel import Command, Kernel, Manifest, hookimpl
from plugins.payments import api
from plugins.payments.service import Payments
from plugins.payments.settings import PaymentsSettings

__version__ = "0.2.0"
HERE = Path(__file__).parent


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="payments",
        title="Payments",
        version=__version__,
        description="Premium subscriptions, a wallet and peer-to-peer transfers.",
        settings_model=PaymentsSettings,
        migrations=HERE / "migrations",
    )


@hookimpl
def register_routes(kernel: Kernel) -> list:
    kernel.plugin_state["payments"] = Payments(kernel, kernel.plugin_settings("payments"))
    return list(api.routes)


def audit(kernel: Kernel, args: argparse.Namespace) -> int:
    """``everything payments audit``: check every invariant of the ledger; non-zero on any breach."""
    breaches = kernel.plugin_state["payments"].ledger.audit()
    for breach in breaches:
        print(f"breach: {breach}", file=sys.stderr)
    print("the ledger is sound" if not breaches else f"{len(breaches)} breach(es)", file=sys.stderr)
    return 1 if breaches else 0


@hookimpl
def register_commands() -> list[Command]:
    help = "check that every transaction sums to zero, balances equal their entries, no user is below zero"
    return [Command("audit", help, audit)]
