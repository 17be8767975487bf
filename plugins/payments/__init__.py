"""Payments: premium subscriptions through a billing provider, and a wallet on a double-entry ledger.

Subscriptions (Stripe, or the embedded sandbox's checkout page) grant plans
through the kernel's entitlements; the wallet takes top-ups, transfers by
username, payment requests and a savings account with daily interest.
docs/payments.md has the choices.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from starlette.requests import Request

from kernel import Command, Kernel, Manifest, NavItem, ProfileAction, SandboxWorld, User, get_kernel, hookimpl
from plugins.payments import api, billing_api, billing_pages, interest_cli, pages, seed
from plugins.payments.service import PAYMENTS, Payments
from plugins.payments.settings import PaymentsSettings

__version__ = "1.0.0"
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
        templates=HERE / "templates",
        static=HERE / "static",
    )


@hookimpl
def register_routes(kernel: Kernel) -> list:
    PAYMENTS.put(kernel, Payments(kernel, kernel.plugin_settings("payments")))
    return [*api.routes, *billing_api.routes, *billing_pages.routes, *pages.routes]


@hookimpl
def subscribe_url(request: Request, user: User | None, plan: str) -> str | None:
    found = get_kernel(request).entitlements.catalog.plans.get(plan)
    return f"/payments/subscribe/{plan}" if found is not None and found.price > 0 else None


@hookimpl
def nav_items(user: User | None) -> list[NavItem]:
    return pages.nav_items(user)


@hookimpl
def profile_actions(request: Request, viewer: User | None, profile: User) -> list[ProfileAction]:
    return pages.profile_actions(request, viewer, profile)


@hookimpl
async def startup(kernel: Kernel) -> None:
    PAYMENTS.of(kernel).billing.periodic_look.start()
    PAYMENTS.of(kernel).interest_job.start()


@hookimpl
async def shutdown(kernel: Kernel) -> None:
    await PAYMENTS.of(kernel).interest_job.stop()
    await PAYMENTS.of(kernel).billing.periodic_look.stop()


def audit(kernel: Kernel, args: argparse.Namespace) -> int:
    """``everything payments audit``: check every invariant of the ledger; non-zero on any breach."""
    breaches = PAYMENTS.of(kernel).ledger.audit()
    for breach in breaches:
        print(f"breach: {breach}", file=sys.stderr)
    print("the ledger is sound" if not breaches else f"{len(breaches)} breach(es)", file=sys.stderr)
    return 1 if breaches else 0


@hookimpl
def register_commands() -> list[Command]:
    help = "check that every transaction sums to zero, balances equal their entries, no user is below zero"
    return [Command("audit", help, audit), Command("accrue-interest", interest_cli.HELP, interest_cli.run, interest_cli.arguments)]


@hookimpl
async def seed_sandbox(kernel: Kernel, world: SandboxWorld) -> None:
    """The sandbox's demo wallets: top-ups with the test card, transfers and requests among the cast."""
    await seed.seed(kernel, world)
