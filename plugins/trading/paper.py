"""Paper trading: virtual accounts, orders that fill against the market's prices, and positions.

Every change to an account runs in one transaction that first locks the
account's row (``FOR UPDATE`` on PostgreSQL; SQLite writers are serialised
already), so buying power is never spent twice. An order fills by one
conditional update (``… WHERE status = 'open'``) in the same transaction
as the cash and the position it moves: an order fills at most once, and
never after it was cancelled, whoever races. Fills are at the provider's
real-time price, whatever the owner's quote tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from kernel import ApiError, Kernel, User, inserted_id, iso, utcnow
from plugins.trading.matching import (
    BUY,
    LIMIT,
    MARKET,
    MICRO,
    SELL,
    STOP,
    OrderTerms,
    fill_price,
    from_micro,
    notional_cents,
    reserve_cents,
    to_micro,
)
from plugins.trading.models import accounts, orders, positions
from plugins.trading.quotes import Quotes, Tier
from plugins.trading.settings import TradingSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection as Db

OPEN, FILLED, CANCELED, EXPIRED = "open", "filled", "canceled", "expired"
MAX_QTY = Decimal(1_000_000)
# Prices past this are typing mistakes, and would overflow the stored millionths.
MAX_PRICE = Decimal(1_000_000_000)


@dataclass(frozen=True)
class OrderRequest:
    """An order as the API received it (validated for shape, not yet against the account)."""

    symbol: str
    side: str
    qty: Decimal
    type: str
    time_in_force: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: str | None = None


@dataclass(frozen=True)
class Fill:
    """An order the matcher closed (filled, or cancelled for want of buying power): for the owner's notification."""

    user_id: int
    order: dict[str, Any]


def unknown_order() -> ApiError:
    return ApiError(404, "unknown_order", "You have no such order.")


class PaperBroker:
    """Accounts, orders and positions in the database, priced by the plugin's market."""

    def __init__(self, kernel: Kernel, settings: TradingSettings, quotes: Quotes) -> None:
        self.kernel = kernel
        self.settings = settings
        self.quotes = quotes
        self.market = quotes.market
        dialect = sqlite if kernel.db.is_sqlite else postgresql
        self._insert_account = dialect.insert(accounts).on_conflict_do_nothing(index_elements=[accounts.c.user_id])

    # Placing and cancelling ------------------------------------------------------------------

    def place(self, user: User, request: OrderRequest) -> tuple[bool, dict[str, Any]]:
        """Place an order: (whether it is new, the order). A marketable order fills at once.

        A retry with the same ``client_order_id`` and the same terms returns the first order; other terms
        under that id are 409 ``duplicate_client_order_id``. Refusals: 422 ``validation_error``,
        404 ``unknown_symbol``, 403 ``insufficient_buying_power`` or ``insufficient_qty``.
        """
        asset = self.quotes.asset(request.symbol)
        terms = _terms(request)
        now = datetime.now(UTC)
        price = _micro_price(self.market.quote(asset.symbol, now).price)
        open_now = self.market.market_open(asset.symbol, now)
        expires_at = self._expiry(asset.symbol, request.time_in_force, now)

        def work(conn: Db) -> tuple[bool, dict[str, Any]]:
            self._lock_account(conn, user.id)
            if request.client_order_id is not None:
                earlier = conn.execute(
                    select(orders).where(orders.c.user_id == user.id, orders.c.client_order_id == request.client_order_id)
                ).first()
                if earlier is not None:
                    if _same_terms(earlier, asset.symbol, request, terms):
                        return False, self.order_json(earlier)
                    raise ApiError(
                        409,
                        "duplicate_client_order_id",
                        "client_order_id: already used for another order.",
                        field="client_order_id",
                    )
            reserve = 0
            at = fill_price(terms, price) if open_now else None
            if terms.side == BUY:
                reserve = reserve_cents(terms, price)
                # An order that fills at once must afford its fill too (a stop buy above its stop).
                needed = max(reserve, notional_cents(terms.qty_micro, at, BUY)) if at is not None else reserve
                available = self._buying_power(conn, user.id)
                if needed > available:
                    # What it needs is not said: for a market order it would tell a delayed user today's price.
                    raise ApiError(
                        403, "insufficient_buying_power", f"Not enough buying power for this order: you have ${available / 100:,.2f}."
                    )
            else:
                sellable = self._sellable(conn, user.id, asset.symbol)
                if terms.qty_micro > sellable:
                    raise ApiError(
                        403, "insufficient_qty", f"You can sell at most {from_micro(sellable)} {asset.symbol}.", field="qty"
                    )
            order_id = inserted_id(conn.execute(
                insert(orders).values(
                    user_id=user.id,
                    client_order_id=request.client_order_id,
                    symbol=asset.symbol,
                    side=terms.side,
                    type=terms.type,
                    qty_micro=terms.qty_micro,
                    limit_micro=terms.limit_micro,
                    stop_micro=terms.stop_micro,
                    time_in_force=request.time_in_force,
                    status=OPEN,
                    reserved=reserve,
                    created_at=now.replace(tzinfo=None),
                    expires_at=expires_at,
                )
            ))
            if at is not None:
                self._fill(conn, order_id, at, now)
            return True, self.order_json(self._order(conn, order_id))

        # The account's row lock orders a user's requests, so a retry racing its original finds it placed.
        return self.kernel.db.write(work)

    def cancel(self, user: User, order_id: int) -> dict[str, Any]:
        """Cancel an open order; 409 ``order_not_open`` once it filled, expired or was cancelled."""

        def work(conn: Db) -> dict[str, Any]:
            self._lock_account(conn, user.id)
            row = self._order(conn, order_id)
            if row is None or row.user_id != user.id:
                raise unknown_order()
            done = conn.execute(
                update(orders)
                .where(orders.c.id == order_id, orders.c.status == OPEN)
                .values(status=CANCELED, reserved=0, closed_at=utcnow())
            )
            if done.rowcount != 1:
                raise ApiError(409, "order_not_open", f"This order is {row.status}; only open orders can be cancelled.")
            return self.order_json(self._order(conn, order_id))

        return self.kernel.db.write(work)

    # The matcher's side -----------------------------------------------------------------------------

    def open_symbols(self) -> list[str]:
        """Symbols with open orders."""
        query = select(orders.c.symbol).where(orders.c.status == OPEN).distinct()
        return self.kernel.db.read(lambda conn: list(conn.execute(query).scalars()))

    def match(self, symbol: str, now: datetime) -> list[Fill]:
        """Fill every open order of ``symbol`` that the price at ``now`` reaches (each in its own transaction)."""
        if not self.market.market_open(symbol, now):
            return []
        price = _micro_price(self.market.quote(symbol, now).price)
        query = select(orders).where(orders.c.status == OPEN, orders.c.symbol == symbol).order_by(orders.c.id)
        candidates = self.kernel.db.read(lambda conn: conn.execute(query).all())
        fills = []
        for row in candidates:
            at = fill_price(_row_terms(row), price)
            if at is None:
                continue

            def work(conn: Db, row: Any = row, at: int = at) -> Fill | None:
                self._lock_account(conn, row.user_id)
                if self._fill(conn, row.id, at, now) is None:
                    return None  # filled, cancelled or expired meanwhile
                return Fill(row.user_id, self.order_json(self._order(conn, row.id)))

            fill = self.kernel.db.write(work)
            if fill is not None:
                fills.append(fill)
        return fills

    def expire(self, now: datetime) -> int:
        """Close day orders past their session's end; how many."""
        moment = now.astimezone(UTC).replace(tzinfo=None)

        def work(conn: Db) -> int:
            done = conn.execute(
                update(orders)
                .where(orders.c.status == OPEN, orders.c.expires_at.is_not(None), orders.c.expires_at <= moment)
                .values(status=EXPIRED, reserved=0, closed_at=moment, reason="session_closed")
            )
            return done.rowcount

        return self.kernel.db.write(work)

    # Reading -------------------------------------------------------------------------------------------

    def account(self, user: User) -> dict[str, Any]:
        """Cash, buying power and equity in cents; positions valued at the user's quote tier."""
        return self.holdings(user)[0]

    def positions(self, user: User) -> list[dict[str, Any]]:
        """The user's positions by symbol, valued at their quote tier."""
        return self.holdings(user)[1]

    def holdings(self, user: User) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The account and its positions from one read, each position priced once (a page shows both)."""
        tier = self.quotes.tier(user)

        def work(conn: Db) -> tuple[int, int, Sequence[Row[Any]]]:
            cash = self._cash(conn, user.id)
            held = conn.execute(select(positions).where(positions.c.user_id == user.id).order_by(positions.c.symbol)).all()
            return cash, cash - self._reserved(conn, user.id), held

        cash, buying_power, held = self.kernel.db.read(work)
        valued = [self._position_json(row, tier) for row in held]
        market_value = sum(p["market_value"] for p in valued)
        account = {
            "cash": cash,
            "buying_power": buying_power,
            "positions_value": market_value,
            "equity": cash + market_value,
            "currency": "USD",
            "delayed": tier.delayed,
            "simulated": self.market.simulated,
        }
        return account, valued

    def orders(self, user: User, status: str, limit: int) -> list[dict[str, Any]]:
        """The user's orders, newest first: ``open``, ``closed`` (filled, cancelled, expired) or ``all``."""
        query = select(orders).where(orders.c.user_id == user.id).order_by(orders.c.id.desc()).limit(limit)
        if status == "open":
            query = query.where(orders.c.status == OPEN)
        elif status == "closed":
            query = query.where(orders.c.status != OPEN)
        return [self.order_json(row) for row in self.kernel.db.read(lambda conn: conn.execute(query).all())]

    def order(self, user: User, order_id: int) -> dict[str, Any]:
        row = self.kernel.db.read(lambda conn: self._order(conn, order_id))
        if row is None or row.user_id != user.id:
            raise unknown_order()
        return self.order_json(row)

    def order_json(self, row: Any) -> dict[str, Any]:
        return {
            "id": row.id,
            "client_order_id": row.client_order_id,
            "symbol": row.symbol,
            "side": row.side,
            "type": row.type,
            "qty": from_micro(row.qty_micro),
            "limit_price": _price(row.limit_micro),
            "stop_price": _price(row.stop_micro),
            "time_in_force": row.time_in_force,
            "status": row.status,
            "filled_price": _price(row.filled_micro),
            "filled_value": notional_cents(row.qty_micro, row.filled_micro, row.side) if row.filled_micro else None,
            "created_at": iso(row.created_at),
            "expires_at": iso(row.expires_at),
            "closed_at": iso(row.closed_at),
            "reason": row.reason,
            "simulated": self.market.simulated,
        }

    # Inside ------------------------------------------------------------------------------------------

    def _expiry(self, symbol: str, time_in_force: str, now: datetime) -> datetime | None:
        if time_in_force != "day":
            return None
        close = self.market.session_close(symbol, now)
        if close is None:  # round the clock: a day order lasts to the end of the UTC day
            close = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return close.astimezone(UTC).replace(tzinfo=None)

    def _lock_account(self, conn: Db, user_id: int) -> None:
        """Make the account if need be, then hold its row until the transaction ends."""
        conn.execute(self._insert_account.values(user_id=user_id, cash=self.settings.starting_cash, created_at=utcnow()))
        conn.execute(select(accounts.c.user_id).where(accounts.c.user_id == user_id).with_for_update()).first()

    def _cash(self, conn: Db, user_id: int) -> int:
        cash = conn.execute(select(accounts.c.cash).where(accounts.c.user_id == user_id)).scalar()
        return self.settings.starting_cash if cash is None else int(cash)

    def _reserved(self, conn: Db, user_id: int) -> int:
        query = select(func.coalesce(func.sum(orders.c.reserved), 0)).where(orders.c.user_id == user_id, orders.c.status == OPEN)
        return int(conn.execute(query).scalar_one())

    def _buying_power(self, conn: Db, user_id: int) -> int:
        return self._cash(conn, user_id) - self._reserved(conn, user_id)

    def _sellable(self, conn: Db, user_id: int, symbol: str) -> int:
        held = conn.execute(
            select(positions.c.qty_micro).where(positions.c.user_id == user_id, positions.c.symbol == symbol)
        ).scalar()
        selling = conn.execute(
            select(func.coalesce(func.sum(orders.c.qty_micro), 0)).where(
                orders.c.user_id == user_id, orders.c.symbol == symbol, orders.c.side == SELL, orders.c.status == OPEN
            )
        ).scalar_one()
        return int(held or 0) - int(selling)

    def _order(self, conn: Db, order_id: int) -> Any:
        return conn.execute(select(orders).where(orders.c.id == order_id)).first()

    def _fill(self, conn: Db, order_id: int, price: int, now: datetime) -> str | None:
        """Fill the order at ``price`` if it is still open, moving cash and position: its new status, or None
        when it was no longer open.

        A buy whose cost at the fill is more than the account can pay (a stop that triggered above its stop,
        a market order that waited for a higher open) is cancelled instead, with the reason
        ``insufficient_buying_power``.
        """
        row = self._order(conn, order_id)
        if row is None or row.status != OPEN:  # read before the lock: cancelled, filled or expired meanwhile
            return None
        moment = now.astimezone(UTC).replace(tzinfo=None)
        value = notional_cents(row.qty_micro, price, row.side)
        if row.side == BUY and value > self._cash(conn, row.user_id) - (self._reserved(conn, row.user_id) - row.reserved):
            conn.execute(
                update(orders)
                .where(orders.c.id == order_id, orders.c.status == OPEN)
                .values(status=CANCELED, reserved=0, closed_at=moment, reason="insufficient_buying_power")
            )
            return CANCELED
        done = conn.execute(
            update(orders)
            .where(orders.c.id == order_id, orders.c.status == OPEN)
            .values(status=FILLED, reserved=0, closed_at=moment, filled_micro=price)
        )
        if done.rowcount != 1:
            return None
        signed_cash = -value if row.side == BUY else value
        conn.execute(update(accounts).where(accounts.c.user_id == row.user_id).values(cash=accounts.c.cash + signed_cash))
        where = and_(positions.c.user_id == row.user_id, positions.c.symbol == row.symbol)
        held = conn.execute(select(positions).where(where)).first()
        if row.side == BUY:
            if held is None:
                conn.execute(
                    insert(positions).values(user_id=row.user_id, symbol=row.symbol, qty_micro=row.qty_micro, cost=value)
                )
            else:
                conn.execute(
                    update(positions).where(where).values(qty_micro=held.qty_micro + row.qty_micro, cost=held.cost + value)
                )
        else:
            assert held is not None  # an open sell is covered by the position it sells (_sellable, when placed)
            remaining = held.qty_micro - row.qty_micro
            if remaining == 0:
                conn.execute(positions.delete().where(where))
            else:
                # The cost basis shrinks in proportion to what was sold (average cost).
                cost = held.cost * remaining // held.qty_micro
                conn.execute(update(positions).where(where).values(qty_micro=remaining, cost=cost))
        return FILLED

    def _position_json(self, row: Any, tier: Tier) -> dict[str, Any]:
        quote = self.quotes.quote(row.symbol, tier)
        price = _micro_price(quote["price"])
        value = notional_cents(row.qty_micro, price, SELL)
        return {
            "symbol": row.symbol,
            "qty": from_micro(row.qty_micro),
            "avg_entry_price": round(row.cost / 100 / (row.qty_micro / MICRO), 6) if row.qty_micro else None,
            "cost_basis": row.cost,
            "current_price": quote["price"],
            "market_value": value,
            "unrealized_pl": value - row.cost,
            "unrealized_pl_pct": round(100 * (value - row.cost) / row.cost, 2) if row.cost else 0.0,
            "delayed": tier.delayed,
        }


def _terms(request: OrderRequest) -> OrderTerms:
    """The order's terms in integers; 422 ``validation_error`` naming the field that is wrong."""

    def micro(value: Decimal, field: str) -> int:
        try:
            amount = to_micro(value)
        except ValueError:
            raise ApiError(422, "validation_error", f"{field}: at most six decimals.", field=field) from None
        if amount <= 0:
            raise ApiError(422, "validation_error", f"{field}: must be more than 0.", field=field)
        return amount

    if request.qty > MAX_QTY:
        raise ApiError(422, "validation_error", f"qty: at most {MAX_QTY}.", field="qty")
    qty = micro(request.qty, "qty")
    for field, value in (("limit_price", request.limit_price), ("stop_price", request.stop_price)):
        if value is not None and value > MAX_PRICE:
            raise ApiError(422, "validation_error", f"{field}: at most {MAX_PRICE:,}.", field=field)
    limit = micro(request.limit_price, "limit_price") if request.limit_price is not None else None
    stop = micro(request.stop_price, "stop_price") if request.stop_price is not None else None
    if request.type == LIMIT and limit is None:
        raise ApiError(422, "validation_error", "limit_price: a limit order needs one.", field="limit_price")
    if request.type == STOP and stop is None:
        raise ApiError(422, "validation_error", "stop_price: a stop order needs one.", field="stop_price")
    if request.type != LIMIT and limit is not None:
        raise ApiError(422, "validation_error", f"limit_price: not for a {request.type} order.", field="limit_price")
    if request.type != STOP and stop is not None:
        raise ApiError(422, "validation_error", f"stop_price: not for a {request.type} order.", field="stop_price")
    assert request.type in (MARKET, LIMIT, STOP)
    return OrderTerms(request.side, request.type, qty, limit, stop)


def _row_terms(row: Any) -> OrderTerms:
    return OrderTerms(row.side, row.type, row.qty_micro, row.limit_micro, row.stop_micro)


def _same_terms(row: Any, symbol: str, request: OrderRequest, terms: OrderTerms) -> bool:
    return (row.symbol, row.time_in_force, _row_terms(row)) == (symbol, request.time_in_force, terms)


def _micro_price(price: float) -> int:
    return int(round(Decimal(str(price)) * MICRO))


def _price(micro: int | None) -> float | None:
    return None if micro is None else float(Decimal(micro) / MICRO)
