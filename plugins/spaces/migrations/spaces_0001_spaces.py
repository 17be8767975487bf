"""spaces: Spaces and their members.

Revision ID: spaces_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "spaces_0001"
down_revision = None
branch_labels = ("spaces",)
depends_on = "kernel_0001"

LIVE = "status = 'live'"


def upgrade() -> None:
    op.create_table(
        "spaces_spaces",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("host_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("status", sa.String(9), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("recording", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_spaces_spaces_host", "spaces_spaces", ["host_id", "id"])
    op.create_index(
        "ix_spaces_spaces_live", "spaces_spaces", ["status", "id"], sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE)
    )
    op.create_table(
        "spaces_members",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("space_id", sa.Integer(), sa.ForeignKey("spaces_spaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("hand_raised", sa.Boolean(), nullable=False),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("joined_at", sa.DateTime(), nullable=False),
        sa.Column("left_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("space_id", "user_id", name="uq_spaces_members_space_user"),
    )


def downgrade() -> None:
    op.drop_table("spaces_members")
    op.drop_table("spaces_spaces")
