"""calls: call settings and call records.

Revision ID: calls_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "calls_0001"
down_revision = None
branch_labels = ("calls",)
depends_on = "kernel_0001"

LIVE = "state <> 'ended'"


def upgrade() -> None:
    op.create_table(
        "calls_settings",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("allow", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "calls_calls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.String(64), nullable=False, unique=True),
        sa.Column("caller_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("callee_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("media", sa.String(5), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("invited_at", sa.DateTime(), nullable=False),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("ended_by_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("caller_connection", sa.String(40), nullable=True),
        sa.Column("callee_connection", sa.String(40), nullable=True),
        sa.Column("offer", sa.Text(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
    )
    op.create_index("ix_calls_calls_caller", "calls_calls", ["caller_id", "id"])
    op.create_index("ix_calls_calls_callee", "calls_calls", ["callee_id", "id"])
    op.create_index(
        "ix_calls_calls_live", "calls_calls", ["state"], sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE)
    )


def downgrade() -> None:
    op.drop_table("calls_calls")
    op.drop_table("calls_settings")
