"""The calls plugin's tables, prefixed ``calls_``; the migrations in ``migrations/`` create them."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text, text

metadata = MetaData()

# Live calls are few; this partial index holds only them, so finding a user's live call never scans history.
LIVE = "state <> 'ended'"

call_settings = Table(
    "calls_settings",
    metadata,
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    # A comma-separated subset of everyone, verified, following, contacts.
    Column("allow", String(64), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

calls = Table(
    "calls_calls",
    metadata,
    Column("id", Integer, primary_key=True),
    # Chosen by the caller's client, as in Matrix; unique across the deployment.
    Column("call_id", String(64), nullable=False, unique=True),
    Column("caller_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
    Column("callee_id", Integer, ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
    Column("media", String(5), nullable=False),
    # ringing, answered or ended.
    Column("state", String(8), nullable=False),
    Column("invited_at", DateTime, nullable=False),
    Column("answered_at", DateTime, nullable=True),
    Column("ended_at", DateTime, nullable=True),
    Column("end_reason", String(32), nullable=True),
    Column("ended_by_id", Integer, ForeignKey("kernel_users.id", ondelete="SET NULL"), nullable=True),
    # The realtime connections bound to the call (Connection.key); the callee's once it answered.
    Column("caller_connection", String(40), nullable=True),
    Column("callee_connection", String(40), nullable=True),
    # The caller's offer, kept only while the call rings, so that a tab the callee opens meanwhile can answer too.
    Column("offer", Text, nullable=True),
    # The callee's answer, kept while the call lasts, so that a caller who reconnects can still apply it.
    Column("answer", Text, nullable=True),
    # Set when a side's socket drops (or its process is found gone): the call ends at this moment
    # unless that side sends calls.resume first. Every process's sweep honours it.
    Column("caller_grace_until", DateTime, nullable=True),
    Column("callee_grace_until", DateTime, nullable=True),
    Index("ix_calls_calls_caller", "caller_id", "id"),
    Index("ix_calls_calls_callee", "callee_id", "id"),
    Index("ix_calls_calls_live", "state", sqlite_where=text(LIVE), postgresql_where=text(LIVE)),
)
