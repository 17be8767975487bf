"""Kernel: users, sessions, API tokens, follows, contacts, blocks.

Revision ID: kernel_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "kernel_0001"
down_revision = None
branch_labels = ("kernel",)
depends_on = None


def _byte_ordered(length: int) -> sa.String:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "kernel_users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(15), nullable=False),
        sa.Column("username_lower", _byte_ordered(15), nullable=False, unique=True),
        sa.Column("display_name", sa.String(50), nullable=False),
        sa.Column("display_lower", _byte_ordered(50), nullable=False),
        sa.Column("bio", sa.String(160), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("followers_count", sa.Integer(), nullable=False),
        sa.Column("following_count", sa.Integer(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_kernel_users_display_lower_id", "kernel_users", ["display_lower", "id"])

    op.create_table(
        "kernel_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("user_agent", sa.String(200), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
    )
    op.create_index("ix_kernel_sessions_user_id", "kernel_sessions", ["user_id"])

    op.create_table(
        "kernel_api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_kernel_api_tokens_user_id", "kernel_api_tokens", ["user_id"])

    for table, left, right, extra in (
        ("kernel_follows", "follower_id", "followee_id", []),
        ("kernel_contacts", "owner_id", "contact_id", [sa.Column("nickname", sa.String(50), nullable=False)]),
        ("kernel_blocks", "blocker_id", "blocked_id", []),
    ):
        op.create_table(
            table,
            sa.Column(left, sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), primary_key=True),
            sa.Column(right, sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), primary_key=True),
            *extra,
            sa.Column("created_at", sa.DateTime(), nullable=False),
        )
        op.create_index(f"ix_{table}_{right}", table, [right])


def downgrade() -> None:
    for table in ("kernel_blocks", "kernel_contacts", "kernel_follows", "kernel_api_tokens", "kernel_sessions", "kernel_users"):
        op.drop_table(table)
