"""Kernel: grants, operator switches, feature rollouts, the audit log and notifications.

Revision ID: kernel_0002
Revises: kernel_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "kernel_0002"
down_revision = "kernel_0001"
branch_labels = None
depends_on = None


def _user(name: str, ondelete: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete=ondelete), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "kernel_grants",
        sa.Column("id", sa.Integer(), primary_key=True),
        _user("user_id", "CASCADE"),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=True),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("start_notified", sa.Boolean(), nullable=False),
        sa.Column("end_notified", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_kernel_grants_user_id", "kernel_grants", ["user_id"])
    op.create_index("ix_kernel_grants_start", "kernel_grants", ["start_notified", "starts_at"])
    op.create_index("ix_kernel_grants_end", "kernel_grants", ["end_notified", "ends_at"])
    op.create_index("ix_kernel_grants_revoked", "kernel_grants", ["end_notified", "revoked_at"])

    op.create_table(
        "kernel_plugin_switches",
        sa.Column("plugin", sa.String(32), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "kernel_feature_rollouts",
        sa.Column("feature", sa.String(100), primary_key=True),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )

    op.create_table(
        "kernel_audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        _user("actor_id", "SET NULL", nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("detail", sa.String(1000), nullable=False),
    )
    op.create_index("ix_kernel_audit_log_at", "kernel_audit_log", ["at"])

    op.create_table(
        "kernel_notifications",
        sa.Column("id", sa.Integer(), primary_key=True),
        _user("user_id", "CASCADE"),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        _user("actor_id", "SET NULL", nullable=True),
        sa.Column("data", sa.String(4000), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("read_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_kernel_notifications_user_id", "kernel_notifications", ["user_id", "id"])


def downgrade() -> None:
    for table in ("kernel_notifications", "kernel_audit_log", "kernel_feature_rollouts", "kernel_plugin_switches", "kernel_grants"):
        op.drop_table(table)
