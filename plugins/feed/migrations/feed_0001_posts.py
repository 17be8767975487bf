"""feed: posts, likes, hashtags, mentions.

Revision ID: feed_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "feed_0001"
down_revision = None
branch_labels = ("feed",)
depends_on = "kernel_0001"


def upgrade() -> None:
    op.create_table(
        "feed_posts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("reply_to_id", sa.Integer(), nullable=True),
        sa.Column("quote_of_id", sa.Integer(), nullable=True),
        sa.Column("repost_of_id", sa.Integer(), nullable=True),
        sa.Column("root_id", sa.Integer(), nullable=True),
        sa.Column("likes_count", sa.Integer(), nullable=False),
        sa.Column("reposts_count", sa.Integer(), nullable=False),
        sa.Column("replies_count", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_feed_posts_author_id", "feed_posts", ["author_id", "id"])
    op.create_index("ix_feed_posts_reply_to_id", "feed_posts", ["reply_to_id", "id"])
    op.create_index("ix_feed_posts_repost_of_id", "feed_posts", ["repost_of_id", "author_id"])
    op.create_table(
        "feed_likes",
        sa.Column("post_id", sa.Integer(), sa.ForeignKey("feed_posts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_feed_likes_user_id", "feed_likes", ["user_id"])
    op.create_table(
        "feed_hashtags",
        sa.Column("tag", sa.String(100), primary_key=True),
        sa.Column("post_id", sa.Integer(), sa.ForeignKey("feed_posts.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "feed_mentions",
        sa.Column("post_id", sa.Integer(), sa.ForeignKey("feed_posts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), primary_key=True),
    )


def downgrade() -> None:
    for table in ("feed_mentions", "feed_hashtags", "feed_likes", "feed_posts"):
        op.drop_table(table)
