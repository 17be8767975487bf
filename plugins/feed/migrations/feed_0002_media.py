"""feed: attachments.

Revision ID: feed_0002
Revises: feed_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "feed_0002"
down_revision = "feed_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_media",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("post_id", sa.Integer(), sa.ForeignKey("feed_posts.id", ondelete="CASCADE"), nullable=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("mime", sa.String(40), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("storage_key", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_feed_media_post_id", "feed_media", ["post_id"])
    op.create_index("ix_feed_media_owner_id", "feed_media", ["owner_id"])


def downgrade() -> None:
    op.drop_table("feed_media")
