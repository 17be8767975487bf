"""payments: the double-entry ledger (accounts, transactions, entries).

Revision ID: payments_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "payments_0001"
down_revision = None
branch_labels = ("payments",)
depends_on = "kernel_0001"


def upgrade() -> None:
    op.create_table(
        "payments_accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="RESTRICT"), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "kind", "currency", name="uq_payments_accounts_owner"),
    )
    op.create_index(
        "uq_payments_accounts_system",
        "payments_accounts",
        ["kind", "currency"],
        unique=True,
        sqlite_where=sa.text("user_id IS NULL"),
        postgresql_where=sa.text("user_id IS NULL"),
    )
    op.create_table(
        "payments_transactions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("actor_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="RESTRICT"), nullable=True),
        sa.Column("note", sa.String(280), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("reverses_id", sa.Integer(), sa.ForeignKey("payments_transactions.id"), nullable=True),
        sa.UniqueConstraint("actor_id", "idempotency_key", name="uq_payments_transactions_idempotency"),
    )
    op.create_table(
        "payments_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("transaction_id", sa.Integer(), sa.ForeignKey("payments_transactions.id"), nullable=False),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("payments_accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_payments_entries_account", "payments_entries", ["account_id", "id"])
    op.create_index("ix_payments_entries_transaction", "payments_entries", ["transaction_id"])


def downgrade() -> None:
    for table in ("payments_entries", "payments_transactions", "payments_accounts"):
        op.drop_table(table)
