"""feed: an index of the cashtags in posts ($TSLA), like the one of hashtags, filled from the posts there are.

Revision ID: feed_0004
Revises: feed_0003
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "feed_0004"
down_revision = "feed_0003"
branch_labels = None
depends_on = None

# As plugins.feed.entities.CASHTAG on the day of this migration (a migration keeps its own copy).
CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6})\b")


def upgrade() -> None:
    op.create_table(
        "feed_cashtags",
        sa.Column("symbol", sa.String(16), primary_key=True),
        sa.Column("post_id", sa.Integer(), sa.ForeignKey("feed_posts.id", ondelete="CASCADE"), primary_key=True),
    )
    posts = sa.table("feed_posts", sa.column("id", sa.Integer()), sa.column("text", sa.Text()), sa.column("deleted", sa.Boolean()))
    cashtags = sa.table("feed_cashtags", sa.column("symbol", sa.String(16)), sa.column("post_id", sa.Integer()))
    bind = op.get_bind()
    result = bind.execute(sa.select(posts.c.id, posts.c.text).where(posts.c.deleted == sa.false()).where(posts.c.text.contains("$")))
    while rows := result.fetchmany(1000):
        found = [
            {"symbol": symbol, "post_id": row.id}
            for row in rows
            for symbol in sorted({match.group(1).upper() for match in CASHTAG.finditer(row.text or "")})
        ]
        if found:
            bind.execute(sa.insert(cashtags), found)


def downgrade() -> None:
    op.drop_table("feed_cashtags")
