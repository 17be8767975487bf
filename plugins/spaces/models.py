"""The spaces plugin's tables, prefixed ``spaces_``; the migrations in ``migrations/`` create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# Live Spaces are few next to ended ones; this partial index holds only them.
LIVE = "status = 'live'"

spaces = Table(
    "spaces_spaces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("host_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(100), nullable=False),
    # scheduled, live or ended.
    Column("status", String(9), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("starts_at", DateTime, nullable=True),
    Column("started_at", DateTime, nullable=True),
    Column("ended_at", DateTime, nullable=True),
    Column("recording", Boolean, nullable=False),
    Index("ix_spaces_spaces_host", "host_id", "id"),
    Index("ix_spaces_spaces_live", "status", "id", sqlite_where=text(LIVE), postgresql_where=text(LIVE)),
)

members = Table(
    "spaces_members",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", Integer, ForeignKey("spaces_spaces.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
    # host, cohost, speaker or listener.
    Column("role", String(8), nullable=False),
    Column("hand_raised", Boolean, nullable=False),
    Column("muted", Boolean, nullable=False),
    Column("removed", Boolean, nullable=False),
    Column("joined_at", DateTime, nullable=False),
    # Set while the member is out of the Space (left, removed, or the Space ended).
    Column("left_at", DateTime, nullable=True),
    UniqueConstraint("space_id", "user_id", name="uq_spaces_members_space_user"),
)

# The finished takes, stored on the deployment's media backend under "<space id>/<name>".
recordings = Table(
    "spaces_recordings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", Integer, ForeignKey("spaces_spaces.id", ondelete="CASCADE"), nullable=False),
    # <UTC start, %Y%m%dT%H%M%S>[-<n>].ogg
    Column("name", String(40), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("duration_seconds", Float, nullable=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("space_id", "name", name="uq_spaces_recordings_space_name"),
)
