"""The payments plugin's services on one kernel: :data:`PAYMENTS` holds one :class:`Payments` per kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread

from kernel import ApiError, Page, PluginState, User
from plugins.payments.billing_service import Billing
from plugins.payments.interest_job import InterestJob
from plugins.payments.ledger import SAVINGS, WALLET, Ledger
from plugins.payments.money import money
from plugins.payments.payment_requests import PaymentRequests
from plugins.payments.savings import INTEREST_KIND, Savings
from plugins.payments.settings import PaymentsSettings

if TYPE_CHECKING:
    from kernel import Kernel


class Payments:
    """The wallet and transfers of one kernel."""

    def __init__(self, kernel: Kernel, settings: PaymentsSettings) -> None:
        self.kernel = kernel
        self.settings = settings
        self.ledger = Ledger(kernel.db, settings.currency)
        self.billing = Billing(kernel, settings, self.ledger)
        self.requests = PaymentRequests(kernel, settings, self.ledger)
        self.savings = Savings(self.ledger, settings)
        # Started and stopped by the plugin's start-up and shut-down hooks.
        self.interest_job = InterestJob(self.savings, locks=kernel.job_locks)

    async def wallet(self, user: User) -> dict[str, Any]:
        """``{"balance", "currency", "savings"}`` in minor units."""
        balances = await anyio.to_thread.run_sync(self.ledger.balances, user.id)
        return {"balance": balances[WALLET], "currency": self.settings.currency, "savings": balances[SAVINGS]}

    async def history(self, user: User, cursor: str | None, limit: int) -> Page:
        """The user's transactions, newest first, with the other party as a user object."""
        page = await anyio.to_thread.run_sync(self.ledger.history, user.id, cursor, limit)
        # Interest lands in savings, never the wallet (the ledger's amount): show what it paid there.
        interest = [item["id"] for item in page.results if item["kind"] == INTEREST_KIND]
        paid = await anyio.to_thread.run_sync(self.savings.savings_amounts, user.id, interest) if interest else {}
        results = [{**item, "amount": paid.get(item["id"], item["amount"])} for item in page.results]
        return Page([await self._with_counterparty(item) for item in results], page.next_cursor)

    async def transfer(self, payer: User, to: str, amount: int, note: str, key: str | None) -> tuple[dict[str, Any], bool]:
        """Send ``amount`` to the user named ``to``; returns (the transaction, whether it answered a retry).

        Refusals: 422 ``invalid_amount``, 422 ``self_transfer``, 404
        ``unknown_user``, 403 ``blocked``, 409 ``insufficient_funds``, 409
        ``idempotency_conflict``. Nothing is written unless it all succeeds.
        """
        if not 0 < amount <= self.settings.max_transfer:
            limit = money(self.settings.max_transfer, self.settings.currency)
            raise ApiError(422, "invalid_amount", f"amount: a whole number of cents from 1 to {limit}.", field="amount")
        payee = await anyio.to_thread.run_sync(self.kernel.user, to)
        if payee is None:
            raise ApiError(404, "unknown_user", f"to: there is no user '{to}'.", field="to")
        if payee.id == payer.id:
            raise ApiError(422, "self_transfer", "to: you cannot send money to yourself.", field="to")
        if await anyio.to_thread.run_sync(self.kernel.is_blocked, payer, payee):
            raise ApiError(403, "blocked", "You cannot send money to this account.")
        done, replayed = await anyio.to_thread.run_sync(self.ledger.transfer, payer.id, payee.id, amount, note, key)
        if not replayed:
            await self._tell_payee(payer, payee, done, amount, note)
        return await self._with_counterparty(done), replayed

    async def _tell_payee(self, payer: User, payee: User, done: dict[str, Any], amount: int, note: str) -> None:
        shown = money(amount, self.settings.currency)
        text = f"{payer.display_name or payer.username} (@{payer.username}) sent you {shown}" + (f": {note}" if note else "")
        await self.kernel.notifications.notify(payee, "payments.received", text, url="/payments/", actor=payer, data={"amount": amount})
        message = {"type": "payments.received", "transaction_id": done["id"], "amount": amount, "from": self.kernel.user_json(payer), "note": note}
        await self.kernel.realtime.send_to_user(payee, message)

    async def _with_counterparty(self, item: dict[str, Any]) -> dict[str, Any]:
        other_id = item.pop("counterparty_id")
        other = await anyio.to_thread.run_sync(self.kernel.user_by_id, other_id) if other_id else None
        return {**item, "currency": self.settings.currency, "counterparty": self.kernel.user_json(other) if other else None}


PAYMENTS: PluginState[Payments] = PluginState("payments")
