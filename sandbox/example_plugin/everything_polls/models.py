"""The polls plugin's tables, prefixed ``polls_`` as every plugin's are; ``migrations/`` creates them."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, MetaData, String, Table, UniqueConstraint

metadata = MetaData()

polls = Table(
    "polls_polls",
    metadata,
    Column("id", Integer, primary_key=True),
    # The feed's post the poll belongs to (a plain id: the feed is another plugin, with its own tables).
    Column("post_id", Integer, nullable=False, index=True),
    Column("author_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
    Column("question", String(140), nullable=False),
    Column("options", JSON, nullable=False),  # 2 to 4 strings
    Column("closes_at", DateTime, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

votes = Table(
    "polls_votes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("poll_id", Integer, ForeignKey("polls_polls.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
    Column("option", Integer, nullable=False),
    UniqueConstraint("poll_id", "user_id", name="uq_polls_votes_poll_user"),
)
