"""The feed's tables, prefixed ``feed_``; the migrations in ``migrations/`` create them."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text, text

metadata = MetaData()


def _user(name: str, nullable: bool = False) -> Column:
    return Column(name, Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=nullable)


posts = Table(
    "feed_posts",
    metadata,
    Column("id", Integer, primary_key=True),
    _user("author_id"),
    # As written; rendering escapes it. Emptied when the post is deleted.
    Column("text", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("reply_to_id", Integer, nullable=True),
    Column("quote_of_id", Integer, nullable=True),
    Column("repost_of_id", Integer, nullable=True),
    # The first post of the thread this one belongs to (itself for a thread's start).
    Column("root_id", Integer, nullable=True),
    Column("likes_count", Integer, nullable=False, default=0),
    Column("reposts_count", Integer, nullable=False, default=0),
    Column("replies_count", Integer, nullable=False, default=0),
    Column("deleted", Boolean, nullable=False, default=False),
    Index("ix_feed_posts_author_id", "author_id", "id"),
    # Timelines read only live posts: this index holds nothing else.
    Index(
        "ix_feed_posts_live_author",
        "author_id",
        "id",
        sqlite_where=text("deleted = 0"),
        postgresql_where=text("deleted = false"),
    ),
    Index("ix_feed_posts_reply_to_id", "reply_to_id", "id"),
    Index("ix_feed_posts_repost_of_id", "repost_of_id", "author_id"),
)

likes = Table(
    "feed_likes",
    metadata,
    Column("post_id", Integer, ForeignKey("feed_posts.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", DateTime, nullable=False),
    Index("ix_feed_likes_user_id", "user_id"),
)

hashtags = Table(
    "feed_hashtags",
    metadata,
    # Lowercased, without the '#'.
    Column("tag", String(100), primary_key=True),
    Column("post_id", Integer, ForeignKey("feed_posts.id", ondelete="CASCADE"), primary_key=True),
)

cashtags = Table(
    "feed_cashtags",
    metadata,
    # Upper case, without the '$'.
    Column("symbol", String(16), primary_key=True),
    Column("post_id", Integer, ForeignKey("feed_posts.id", ondelete="CASCADE"), primary_key=True),
)

mentions = Table(
    "feed_mentions",
    metadata,
    Column("post_id", Integer, ForeignKey("feed_posts.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), primary_key=True),
)

media = Table(
    "feed_media",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
    # None until a post takes it.
    Column("post_id", Integer, ForeignKey("feed_posts.id", ondelete="CASCADE"), nullable=True),
    Column("kind", String(10), nullable=False),
    Column("mime", String(40), nullable=False),
    Column("size", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("duration", Float, nullable=True),
    Column("storage_key", String(100), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_feed_media_post_id", "post_id"),
    Index("ix_feed_media_owner_id", "owner_id"),
)
