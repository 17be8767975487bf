"""payments: payment requests, and the daily savings-interest accruals.

Revision ID: payments_0003
Revises: payments_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "payments_0003"
down_revision = "payments_0002"
branch_labels = None
depends_on = None

USERS = "kernel_users.id"


def upgrade() -> None:
    op.create_table(
        "payments_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("requester_id", sa.Integer(), sa.ForeignKey(USERS, ondelete="RESTRICT"), nullable=False),
        sa.Column("payer_id", sa.Integer(), sa.ForeignKey(USERS, ondelete="RESTRICT"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("note", sa.String(280), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("transaction_id", sa.Integer(), sa.ForeignKey("payments_transactions.id"), nullable=True),
    )
    op.create_index("ix_payments_requests_payer", "payments_requests", ["payer_id", "id"])
    op.create_index("ix_payments_requests_requester", "payments_requests", ["requester_id", "id"])
    op.create_table(
        "payments_interest_accruals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("payments_accounts.id"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("annual_rate", sa.String(24), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remainder_nanos", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.Integer(), sa.ForeignKey("payments_transactions.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("account_id", "day", name="uq_payments_interest_accruals_day"),
    )


def downgrade() -> None:
    op.drop_table("payments_interest_accruals")
    op.drop_index("ix_payments_requests_requester", table_name="payments_requests")
    op.drop_index("ix_payments_requests_payer", table_name="payments_requests")
    op.drop_table("payments_requests")
