"""What the payments tests share: the ledger of an app, money put in a wallet, a wallet's balance."""

from __future__ import annotations

from starlette.applications import Starlette

from plugins.payments.ledger import Ledger
from plugins.payments.service import PAYMENTS
from tests.conftest import UserClient


def ledger_of(app: Starlette) -> Ledger:
    return PAYMENTS.of(app.state.kernel).ledger


def fund(app: Starlette, client: UserClient, amount: int) -> None:
    """Put money in a user's wallet as a top-up would: from the external system account."""
    ledger_of(app).credit(app.state.kernel.user(client.username).id, amount, "topup", "test top-up")


def balance(client: UserClient) -> int:
    return client.get("/api/payments/wallet").json()["balance"]
