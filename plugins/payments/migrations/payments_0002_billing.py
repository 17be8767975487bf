"""payments: billing (customers, subscriptions, provider events, checkouts).

Revision ID: payments_0002
Revises: payments_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "payments_0002"
down_revision = "payments_0001"
branch_labels = None
depends_on = None

USERS = "kernel_users.id"


def upgrade() -> None:
    op.create_table(
        "payments_customers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(USERS, ondelete="RESTRICT"), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("provider", "customer_id", name="uq_payments_customers_ref"),
        sa.UniqueConstraint("user_id", "provider", name="uq_payments_customers_user"),
    )
    op.create_table(
        "payments_subscriptions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(USERS, ondelete="RESTRICT"), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("subscription_id", sa.String(255), nullable=False),
        sa.Column("plan", sa.String(64), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("current_period_end", sa.DateTime(), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("grace_until", sa.DateTime(), nullable=True),
        sa.Column("observed_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("provider", "subscription_id", name="uq_payments_subscriptions_ref"),
    )
    op.create_index("ix_payments_subscriptions_user", "payments_subscriptions", ["user_id"])
    op.create_table(
        "payments_billing_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("provider", "event_id", name="uq_payments_billing_events_ref"),
    )
    op.create_table(
        "payments_checkouts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(USERS, ondelete="RESTRICT"), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("plan", sa.String(64), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider_ref", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("transaction_id", sa.Integer(), sa.ForeignKey("payments_transactions.id"), nullable=True),
    )
    op.create_index("ix_payments_checkouts_user", "payments_checkouts", ["user_id", "created_at"])


def downgrade() -> None:
    for table in ("payments_checkouts", "payments_billing_events", "payments_subscriptions", "payments_customers"):
        op.drop_table(table)
