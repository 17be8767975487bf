"""trading: paper accounts, orders and positions.

Revision ID: trading_0002
Revises: trading_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "trading_0002"
down_revision = "trading_0001"
branch_labels = None
depends_on = None

OPEN = "status = 'open'"


def upgrade() -> None:
    op.create_table(
        "trading_accounts",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("cash", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "trading_orders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=True),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("type", sa.String(6), nullable=False),
        sa.Column("qty_micro", sa.BigInteger(), nullable=False),
        sa.Column("limit_micro", sa.BigInteger(), nullable=True),
        sa.Column("stop_micro", sa.BigInteger(), nullable=True),
        sa.Column("time_in_force", sa.String(3), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("filled_micro", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.UniqueConstraint("user_id", "client_order_id", name="uq_trading_orders_client_id"),
    )
    op.create_index("ix_trading_orders_user", "trading_orders", ["user_id", "id"])
    op.create_index(
        "ix_trading_orders_open",
        "trading_orders",
        ["status", "symbol"],
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )
    op.create_table(
        "trading_positions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("qty_micro", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("user_id", "symbol", name="uq_trading_positions_user_symbol"),
    )


def downgrade() -> None:
    op.drop_table("trading_positions")
    op.drop_table("trading_orders")
    op.drop_table("trading_accounts")
