"""The trading plugin's tables, prefixed ``trading_``; the migrations in ``migrations/`` create them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, UniqueConstraint, text

metadata = MetaData()

# Open orders are few next to closed ones; the matcher's index holds only them.
OPEN = "status = 'open'"

watchlist = Table(
    "trading_watchlist",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("added_at", DateTime, nullable=False),
    UniqueConstraint("user_id", "symbol", name="uq_trading_watchlist_user_symbol"),
)

# A paper account, made with the settings' starting cash the first time a user trades or looks.
accounts = Table(
    "trading_accounts",
    metadata,
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), primary_key=True),
    Column("cash", BigInteger, nullable=False),  # cents
    Column("created_at", DateTime, nullable=False),
)

orders = Table(
    "trading_orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
    # The client's own key for retries: one order per (user, client_order_id).
    Column("client_order_id", String(64), nullable=True),
    Column("symbol", String(16), nullable=False),
    Column("side", String(4), nullable=False),  # buy, sell
    Column("type", String(6), nullable=False),  # market, limit, stop
    Column("qty_micro", BigInteger, nullable=False),  # millionths of a share or coin
    Column("limit_micro", BigInteger, nullable=True),  # millionths of a dollar
    Column("stop_micro", BigInteger, nullable=True),
    Column("time_in_force", String(3), nullable=False),  # day, gtc
    Column("status", String(8), nullable=False),  # open, filled, canceled, expired
    # The buying power an open buy holds, in cents; 0 once it is no longer open.
    Column("reserved", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=True),  # day orders: the session's close
    Column("closed_at", DateTime, nullable=True),
    Column("filled_micro", BigInteger, nullable=True),  # the fill price
    Column("reason", String(40), nullable=True),  # why it was canceled or expired, when not by its owner
    UniqueConstraint("user_id", "client_order_id", name="uq_trading_orders_client_id"),
    Index("ix_trading_orders_user", "user_id", "id"),
    Index("ix_trading_orders_open", "status", "symbol", sqlite_where=text(OPEN), postgresql_where=text(OPEN)),
)

positions = Table(
    "trading_positions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("qty_micro", BigInteger, nullable=False),
    Column("cost", BigInteger, nullable=False),  # cents paid for what is held (the cost basis)
    UniqueConstraint("user_id", "symbol", name="uq_trading_positions_user_symbol"),
)
