"""The job that fills open orders as prices move and closes day orders at their session's end.

It runs every ``tick_seconds`` in one process of the deployment at a time
(its lock); running in several at once would still be safe, since an order
fills by a conditional update that only one transaction can win
(plugins.trading.paper). Whoever's order fills is told
over realtime (``trading.order``) and by a notification.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import anyio.to_thread

from kernel import Kernel, Periodic
from plugins.trading.paper import Fill, PaperBroker

log = logging.getLogger("everything.trading")


class Matcher:
    def __init__(self, kernel: Kernel, broker: PaperBroker, every: float) -> None:
        self.kernel = kernel
        self.broker = broker
        self.job = Periodic("trading-matcher", every, self.run_once, locks=kernel.job_locks)

    async def run_once(self) -> list[Fill]:
        """Expire, then match every symbol with open orders, at this moment's prices."""
        now = datetime.now(UTC)
        symbols = await anyio.to_thread.run_sync(self.broker.open_symbols)
        if not symbols:  # nothing to expire or fill: no write, which would queue behind every other writer
            return []
        await anyio.to_thread.run_sync(self.broker.expire, now)
        fills: list[Fill] = []
        for symbol in symbols:
            fills += await anyio.to_thread.run_sync(self.broker.match, symbol, now)
        for fill in fills:
            await self.tell(fill)
        return fills

    async def tell(self, fill: Fill) -> None:
        order = fill.order
        if order["status"] == "filled":
            verb = "Bought" if order["side"] == "buy" else "Sold"
            price = order["filled_price"]
            shown = f"{price:,.2f}" if price >= 1 else f"{price:g}"
            kind, text = "trading.filled", f"{verb} {order['qty']} {order['symbol']} at ${shown} (paper trading)"
        else:
            kind = "trading.canceled"
            text = f"Your order to {order['side']} {order['qty']} {order['symbol']} was cancelled: not enough buying power when it triggered"
        try:
            await self.kernel.realtime.send_to_user(fill.user_id, {"type": "trading.order", "order": order})
            await self.kernel.notifications.notify(
                fill.user_id, kind, text, url=f"/trading/{order['symbol']}", data={"order_id": order["id"]}
            )
        except Exception:
            log.exception("trading: telling user %s about order %s failed", fill.user_id, order["id"])
