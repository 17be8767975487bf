"""trading: watchlists.

Revision ID: trading_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "trading_0001"
down_revision = None
branch_labels = ("trading",)
depends_on = "kernel_0001"


def upgrade() -> None:
    op.create_table(
        "trading_watchlist",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "symbol", name="uq_trading_watchlist_user_symbol"),
    )


def downgrade() -> None:
    op.drop_table("trading_watchlist")
