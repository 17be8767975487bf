"""The kernel's tables. Every kernel table is prefixed ``kernel_``.

These SQLModel classes describe the schema; the migrations in
``kernel/storage/migrations/versions`` create it, and a test checks the two agree.
Hot paths query the tables through SQLAlchemy Core (:func:`core_table`)
rather than the ORM, which costs more than the queries themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Index, LargeBinary, String, Table, inspect
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Now in UTC, without tzinfo: the form every kernel timestamp is stored in."""
    return datetime.now(UTC).replace(tzinfo=None)


def byte_ordered(length: int) -> String:
    """A string column that sorts by code point on every database.

    Directory search merges ranges of these columns in Python, so the
    database must order them as Python does; PostgreSQL's default collation
    may not.
    """
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class UserRow(SQLModel, table=True):
    __tablename__ = "kernel_users"
    __table_args__ = (Index("ix_kernel_users_display_lower_id", "display_lower", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=15)
    # Lowercased copies: uniqueness without regard to case, and prefix search.
    username_lower: str = Field(sa_type=byte_ordered(15), unique=True)
    display_name: str = Field(max_length=50)
    display_lower: str = Field(sa_type=byte_ordered(50))
    bio: str = Field(default="", max_length=160)
    password_hash: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    followers_count: int = 0
    following_count: int = 0
    is_admin: bool = False


class SessionRow(SQLModel, table=True):
    __tablename__ = "kernel_sessions"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="kernel_users.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    expires_at: datetime = Field(sa_type=DateTime)
    user_agent: str = Field(default="", max_length=200)
    ip: str = Field(default="", max_length=64)


class ApiTokenRow(SQLModel, table=True):
    __tablename__ = "kernel_api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="kernel_users.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=60)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class FollowRow(SQLModel, table=True):
    __tablename__ = "kernel_follows"

    follower_id: int = Field(foreign_key="kernel_users.id", primary_key=True, ondelete="CASCADE")
    followee_id: int = Field(foreign_key="kernel_users.id", primary_key=True, index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class ContactRow(SQLModel, table=True):
    __tablename__ = "kernel_contacts"

    owner_id: int = Field(foreign_key="kernel_users.id", primary_key=True, ondelete="CASCADE")
    contact_id: int = Field(foreign_key="kernel_users.id", primary_key=True, index=True, ondelete="CASCADE")
    nickname: str = Field(default="", max_length=50)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class BlockRow(SQLModel, table=True):
    __tablename__ = "kernel_blocks"

    blocker_id: int = Field(foreign_key="kernel_users.id", primary_key=True, ondelete="CASCADE")
    blocked_id: int = Field(foreign_key="kernel_users.id", primary_key=True, index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class GrantRow(SQLModel, table=True):
    """A plan held by a user for a while. Rows are never deleted: revoking sets ``revoked_at``."""

    __tablename__ = "kernel_grants"
    # The periodic look for grants that started, ended or were revoked untold reads these, not every grant.
    __table_args__ = (
        Index("ix_kernel_grants_start", "start_notified", "starts_at"),
        Index("ix_kernel_grants_end", "end_notified", "ends_at"),
        Index("ix_kernel_grants_revoked", "end_notified", "revoked_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="kernel_users.id", index=True, ondelete="CASCADE")
    plan: str = Field(max_length=32)
    source: str = Field(max_length=20)  # subscription, operator, trial
    starts_at: datetime = Field(sa_type=DateTime)
    ends_at: datetime | None = Field(default=None, sa_type=DateTime)
    reference: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime)
    # Which process told the plugins that the grant started or ended: the
    # first to set the flag does, so each event is told once.
    start_notified: bool = False
    end_notified: bool = False


class PluginSwitchRow(SQLModel, table=True):
    """An operator's run-time switch for one plugin; no row means on."""

    __tablename__ = "kernel_plugin_switches"

    plugin: str = Field(primary_key=True, max_length=32)
    enabled: bool
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class FeatureRolloutRow(SQLModel, table=True):
    """The share of users a feature is rolled out to; no row means everyone."""

    __tablename__ = "kernel_feature_rollouts"

    feature: str = Field(primary_key=True, max_length=100)
    percent: int
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class AuditRow(SQLModel, table=True):
    """Who changed a switch, a grant or an operator right, and when."""

    __tablename__ = "kernel_audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime, index=True)
    actor_id: int | None = Field(default=None, foreign_key="kernel_users.id", ondelete="SET NULL")
    # Who acted, as shown: "@alice", "cli", "payments".
    actor: str = Field(max_length=64)
    action: str = Field(max_length=40)
    target: str = Field(max_length=200)
    detail: str = Field(default="", max_length=1000)


class NotificationRow(SQLModel, table=True):
    __tablename__ = "kernel_notifications"
    __table_args__ = (Index("ix_kernel_notifications_user_id", "user_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="kernel_users.id", ondelete="CASCADE")
    # "<plugin>.<name>", such as "kernel.follow" or "calls.missed".
    kind: str = Field(max_length=64)
    text: str = Field(max_length=500)
    url: str = Field(default="", max_length=500)
    actor_id: int | None = Field(default=None, foreign_key="kernel_users.id", ondelete="SET NULL")
    data: str = Field(default="{}", max_length=4000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    read_at: datetime | None = Field(default=None, sa_type=DateTime)


def core_table(model: type[SQLModel]) -> Table:
    """The table a table model maps (its ``__table__``, which SQLModel's types do not declare)."""
    table = inspect(model).local_table
    assert isinstance(table, Table)  # a table model maps one Table, never a join or a subquery
    return table


users = core_table(UserRow)
sessions = core_table(SessionRow)
api_tokens = core_table(ApiTokenRow)
follows = core_table(FollowRow)
contacts = core_table(ContactRow)
blocks = core_table(BlockRow)
grants = core_table(GrantRow)
plugin_switches = core_table(PluginSwitchRow)
feature_rollouts = core_table(FeatureRolloutRow)
audit_log = core_table(AuditRow)
notifications = core_table(NotificationRow)


class StoredFileRow(SQLModel, table=True):
    """A file of the database media backend; ``key`` stays empty until its last chunk is written."""

    __tablename__ = "kernel_stored_files"

    id: int | None = Field(default=None, primary_key=True)
    key: str | None = Field(default=None, max_length=400, unique=True)
    content_type: str = Field(max_length=200)
    size: int = Field(sa_type=BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class StoredFileChunkRow(SQLModel, table=True):
    """One fixed-size piece of a stored file's bytes, in order by ``seq``."""

    __tablename__ = "kernel_stored_file_chunks"

    file_id: int = Field(foreign_key="kernel_stored_files.id", primary_key=True, ondelete="CASCADE")
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_type=LargeBinary)


stored_files = core_table(StoredFileRow)
stored_file_chunks = core_table(StoredFileChunkRow)


class DeploymentRow(SQLModel, table=True):
    """The one row naming this deployment: what its processes share whatever URL they reach the database by."""

    __tablename__ = "kernel_deployment"

    id: int = Field(primary_key=True)
    deployment_id: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
