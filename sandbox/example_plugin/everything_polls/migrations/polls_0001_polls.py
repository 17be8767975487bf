"""polls: polls and votes.

Revision ID: polls_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "polls_0001"
down_revision = None
branch_labels = ("polls",)
depends_on = "kernel_0001"


def upgrade() -> None:
    op.create_table(
        "polls_polls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("question", sa.String(140), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("closes_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_polls_polls_post_id", "polls_polls", ["post_id"])
    op.create_table(
        "polls_votes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("poll_id", sa.Integer(), sa.ForeignKey("polls_polls.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("option", sa.Integer(), nullable=False),
        sa.UniqueConstraint("poll_id", "user_id", name="uq_polls_votes_poll_user"),
    )


def downgrade() -> None:
    op.drop_table("polls_votes")
    op.drop_table("polls_polls")
