"""feed: an index of live posts by author, for timelines.

Revision ID: feed_0003
Revises: feed_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "feed_0003"
down_revision = "feed_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_feed_posts_live_author",
        "feed_posts",
        ["author_id", "id"],
        sqlite_where=sa.text("deleted = 0"),
        postgresql_where=sa.text("deleted = false"),
    )


def downgrade() -> None:
    op.drop_index("ix_feed_posts_live_author", "feed_posts")
