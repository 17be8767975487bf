"""Identity: accounts, browser sessions and API tokens.

Sign-up takes a username and a password, nothing else. Session cookies and
bearer tokens are random secrets stored only as SHA-256 hashes, so the
database never holds a usable credential; deleting the row revokes it.

Every authenticated request resolves a credential, so resolutions and user
rows are cached in the process for a few seconds. A change to them (a
revoked session or token, a new password, an account's profile or rights)
drops them at once here and is announced as a :class:`CredentialChange`,
which the composition root carries to every other process of the
deployment (``kernel/realtime/revocation.py``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from kernel.errors import ApiError
from kernel.storage.database import Database, inserted_id
from kernel.storage.models import api_tokens, sessions, users, utcnow

USERNAME = re.compile(r"[A-Za-z0-9_]{4,15}")  # always with fullmatch: "$" would let a trailing newline in

# Names that would be confusing or dangerous as accounts; every plugin's
# name joins them at boot.
RESERVED_USERNAMES = frozenset(
    {
        "about", "account", "admin", "administrator", "api", "auth", "echo", "everything",
        "explore", "help", "home", "login", "logout", "me", "moderator", "null", "operator",
        "privacy", "root", "search", "security", "settings", "signin", "signup", "static",
        "support", "system", "terms", "undefined", "user", "users", "www",
    }
)

CACHE_SECONDS = 5.0
MAX_ID = 2**31 - 1  # PostgreSQL's INTEGER: a larger id names no row, and must not reach the driver


@dataclass(frozen=True)
class User:
    """An account, as the kernel hands it to routes and plugins."""

    id: int
    username: str
    display_name: str
    bio: str
    followers: int
    following: int
    is_admin: bool
    created_at: datetime


@dataclass(frozen=True)
class Credential:
    """What a cookie or bearer token resolved to."""

    user_id: int
    kind: str  # "session" or "token"
    id: int


@dataclass(frozen=True)
class CredentialChange:
    """What changed, for every process to drop from its caches and to close the sockets of.

    ``sessions`` and ``tokens`` name credentials that no longer exist;
    ``users`` names accounts whose row changed (profile, password, rights).
    """

    sessions: frozenset[int] = frozenset()
    tokens: frozenset[int] = frozenset()
    users: frozenset[int] = frozenset()

    def as_message(self) -> dict[str, Any]:
        """The change as a control message on the bus."""
        return {"type": "kernel.credentials", "sessions": sorted(self.sessions), "tokens": sorted(self.tokens), "users": sorted(self.users)}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> CredentialChange | None:
        """The change a control message carries; None when it is not a well-formed ``kernel.credentials`` message."""

        def ids(name: str) -> frozenset[int] | None:
            value = message.get(name, [])
            if not isinstance(value, list) or not all(isinstance(item, int) and not isinstance(item, bool) for item in value):
                return None
            return frozenset(value)

        if message.get("type") != "kernel.credentials":
            return None
        sessions, tokens, users = ids("sessions"), ids("tokens"), ids("users")
        if sessions is None or tokens is None or users is None:
            return None
        return cls(sessions, tokens, users)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def iso(moment: datetime | None) -> str | None:
    """A stored time (UTC, without tzinfo) as the API shows it: ``2026-12-07T15:19:12Z``; None stays None."""
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"


def user_from_row(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        bio=row.bio,
        followers=row.followers_count,
        following=row.following_count,
        is_admin=row.is_admin,
        created_at=row.created_at,
    )


USER_COLUMNS = (
    users.c.id,
    users.c.username,
    users.c.display_name,
    users.c.bio,
    users.c.followers_count,
    users.c.following_count,
    users.c.is_admin,
    users.c.created_at,
)


# Built once: building a statement per call costs more than running it.
USER_BY_NAME = select(*USER_COLUMNS).where(users.c.username_lower == bindparam("name"))


def check_username(username: str, reserved: frozenset[str]) -> str:
    """Return the username if it may be registered, else raise a 422 naming why."""
    if not USERNAME.fullmatch(username):
        raise ApiError(
            422,
            "validation_error",
            "username: 4 to 15 letters, digits or underscores",
            field="username",
        )
    if username.lower() in reserved:
        raise ApiError(422, "username_reserved", f"username: '{username}' is reserved", field="username")
    return username


def is_username(text: str) -> bool:
    """True when ``text`` has the form of a username (whether or not it exists)."""
    return USERNAME.fullmatch(text) is not None


def check_text(value: str, field: str, multiline: bool = False) -> str:
    """Refuse control, format and bidirectional-override characters with a 422 naming the field.

    They let one name pose as another (``"\u202eadmin"``), garble logs, and
    PostgreSQL cannot store NUL at all.
    """
    for char in value:
        if (char == "\n" and multiline) or char == "\u200d":  # the joiner inside emoji sequences
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise ApiError(422, "validation_error", f"{field}: contains a control or invisible character", field=field)
    return value


def clean_display_name(display_name: str | None, username: str) -> str:
    name = " ".join(check_text(display_name or "", "display_name").split())
    return name or username


class TtlCache:
    """A dict whose entries expire after ``ttl`` seconds."""

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: Any, value: Any) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, value)

    def drop(self, key: Any) -> None:
        self._entries.pop(key, None)

    def drop_where(self, predicate: Any) -> None:
        # Worker threads add entries meanwhile: iterate over a snapshot
        # (list() copies the dict in one step under the GIL).
        for key, (_, value) in list(self._entries.items()):
            if predicate(value):
                self._entries.pop(key, None)


class Identity:
    """Accounts, sessions and tokens of one deployment."""

    def __init__(self, db: Database, session_days: int, reserved: frozenset[str]) -> None:
        self.db = db
        self.session_days = session_days
        self.reserved = reserved
        self._credentials = TtlCache(CACHE_SECONDS)
        self._users = TtlCache(CACHE_SECONDS)
        self._ids_by_name = TtlCache(CACHE_SECONDS)
        # Tells the other processes of a change; the composition root sets it (here: nobody to tell).
        self.announce: Callable[[CredentialChange], None] = lambda change: None

    # Accounts -------------------------------------------------------------

    def create_user(self, username: str, password_hash: str, display_name: str) -> User:
        """Insert an account; 409 ``username_taken`` when the name exists in any case."""
        values = {
            "username": username,
            "username_lower": username.lower(),
            "display_name": display_name,
            "display_lower": display_name.lower(),
            "bio": "",
            "password_hash": password_hash,
            "created_at": utcnow(),
            "followers_count": 0,
            "following_count": 0,
            "is_admin": False,
        }
        try:
            user_id = self.db.write(lambda conn: inserted_id(conn.execute(insert(users).values(values))))
        except IntegrityError:
            raise ApiError(409, "username_taken", f"username: '{username}' is taken", field="username") from None
        return self._account(user_id)

    def _account(self, user_id: int) -> User:
        """An account this instance has just written: accounts are never deleted, so it exists."""
        user = self.user_by_id(user_id)
        assert user is not None, f"account {user_id} is missing"
        return user

    def user_by_id(self, user_id: int) -> User | None:
        cached = self._users.get(user_id)
        if cached is not None:
            return cached
        row = self.db.read(lambda conn: conn.execute(select(*USER_COLUMNS).where(users.c.id == user_id)).first())
        if row is None:
            return None
        user = user_from_row(row)
        self._users.put(user_id, user)
        return user

    def user_by_username(self, username: str) -> User | None:
        """The account with this name in any case; answered from the cache while its row is (names never change)."""
        if not is_username(username):
            return None
        user_id = self._ids_by_name.get(username.lower())
        if user_id is not None and (cached := self._users.get(user_id)) is not None:
            return cached
        row = self.db.read(lambda conn: conn.execute(USER_BY_NAME, {"name": username.lower()}).first())
        if row is None:
            return None
        user = user_from_row(row)
        self._ids_by_name.put(username.lower(), user.id)
        self._users.put(user.id, user)
        return user

    def password_hash_of(self, username: str) -> tuple[int, str] | None:
        if not is_username(username):
            return None
        row = self.db.read(
            lambda conn: conn.execute(
                select(users.c.id, users.c.password_hash).where(users.c.username_lower == username.lower())
            ).first()
        )
        return None if row is None else (row.id, row.password_hash)

    def password_hash_by_id(self, user_id: int) -> str:
        return self.db.read(lambda conn: conn.execute(select(users.c.password_hash).where(users.c.id == user_id)).scalar_one())

    def update_profile(self, user_id: int, display_name: str | None, bio: str | None) -> User:
        values: dict[str, Any] = {}
        if display_name is not None:
            values["display_name"] = display_name
            values["display_lower"] = display_name.lower()
        if bio is not None:
            values["bio"] = bio
        if values:
            self.db.write(lambda conn: conn.execute(update(users).where(users.c.id == user_id).values(values)))
        self.account_changed(user_id)
        return self._account(user_id)

    def set_password(self, user_id: int, password_hash: str, keep_session_id: int | None) -> None:
        """Change the password and end every other session of the user, in every process."""

        def work(conn: Connection) -> list[int]:
            conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))
            others = [sessions.c.user_id == user_id]
            if keep_session_id is not None:
                others.append(sessions.c.id != keep_session_id)
            ended = list(conn.execute(select(sessions.c.id).where(*others)).scalars())
            if ended:
                conn.execute(delete(sessions).where(sessions.c.id.in_(ended)))
            return ended

        ended = self.db.write(work)
        # A session started meanwhile by another process escaped the list: drop every cached one of the user here.
        self._credentials.drop_where(lambda cred: cred.kind == "session" and cred.user_id == user_id and cred.id != keep_session_id)
        self.changed(CredentialChange(sessions=frozenset(ended), users=frozenset({user_id})))

    def forget_user(self, *user_ids: int) -> None:
        """Drop cached rows of these users in this process (counts that a follow changed)."""
        for user_id in user_ids:
            self._users.drop(user_id)

    def account_changed(self, *user_ids: int) -> None:
        """After a change to these accounts (profile, rights): every process drops its copy of them at once."""
        self.changed(CredentialChange(users=frozenset(user_ids)))

    def changed(self, change: CredentialChange) -> None:
        """Drop what ``change`` names from this process's caches, and announce it to the other processes."""
        self.forget(change)
        self.announce(change)

    def forget(self, change: CredentialChange) -> None:
        """Drop what ``change`` names from this process's caches (a change made here or announced by another process)."""
        if change.sessions or change.tokens:
            gone = {("session", id_) for id_ in change.sessions} | {("token", id_) for id_ in change.tokens}
            self._credentials.drop_where(lambda cred: (cred.kind, cred.id) in gone)
        self.forget_user(*change.users)

    def count_users(self) -> int:
        return self.db.read(lambda conn: conn.execute(select(func.count()).select_from(users)).scalar_one())

    # Sessions -------------------------------------------------------------

    def start_session(self, user_id: int, user_agent: str, ip: str) -> tuple[str, int]:
        """Open a browser session; returns the cookie secret and the session id."""
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        values = {
            "user_id": user_id,
            "token_hash": hash_secret(secret),
            "created_at": now,
            "expires_at": now + timedelta(days=self.session_days),
            "user_agent": user_agent[:200],
            "ip": ip[:64],
        }
        session_id = self.db.write(lambda conn: inserted_id(conn.execute(insert(sessions).values(values))))
        return secret, session_id

    def list_sessions(self, user_id: int, current_id: int | None) -> list[dict[str, Any]]:
        """The user's live sessions, newest first; ``current`` marks the one with id ``current_id``."""
        rows = self.db.read(
            lambda conn: conn.execute(
                select(sessions.c.id, sessions.c.created_at, sessions.c.expires_at, sessions.c.user_agent, sessions.c.ip)
                .where(sessions.c.user_id == user_id, sessions.c.expires_at > utcnow())
                .order_by(sessions.c.created_at.desc())
            ).all()
        )
        return [
            {
                "id": row.id,
                "created_at": iso(row.created_at),
                "expires_at": iso(row.expires_at),
                "user_agent": row.user_agent,
                "ip": row.ip,
                "current": row.id == current_id,
            }
            for row in rows
        ]

    def end_session(self, user_id: int, session_id: int) -> bool:
        """Revoke one session of the user; False when there is no such session."""
        return self._revoke(sessions, "session", user_id, session_id)

    # API tokens -----------------------------------------------------------

    def create_token(self, user_id: int, name: str) -> dict[str, Any]:
        """Mint a bearer token; the secret is in the result and nowhere else."""
        secret = "ev_" + secrets.token_urlsafe(32)
        now = utcnow()
        values = {"user_id": user_id, "name": name, "token_hash": hash_secret(secret), "created_at": now}
        token_id = self.db.write(lambda conn: inserted_id(conn.execute(insert(api_tokens).values(values))))
        return {"id": token_id, "name": name, "token": secret, "created_at": iso(now)}

    def list_tokens(self, user_id: int) -> list[dict[str, Any]]:
        rows = self.db.read(
            lambda conn: conn.execute(
                select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.created_at)
                .where(api_tokens.c.user_id == user_id)
                .order_by(api_tokens.c.id)
            ).all()
        )
        return [{"id": row.id, "name": row.name, "created_at": iso(row.created_at)} for row in rows]

    def delete_token(self, user_id: int, token_id: int) -> bool:
        """Revoke one API token of the user; False when there is no such token."""
        return self._revoke(api_tokens, "token", user_id, token_id)

    def _revoke(self, table: Any, kind: str, user_id: int, credential_id: int) -> bool:
        if not 0 < credential_id <= MAX_ID:
            return False
        deleted = self.db.write(
            lambda conn: conn.execute(delete(table).where(table.c.id == credential_id, table.c.user_id == user_id)).rowcount
        )
        if deleted:
            ids = frozenset({credential_id})
            self.changed(CredentialChange(sessions=ids) if kind == "session" else CredentialChange(tokens=ids))
        return bool(deleted)

    # Resolving credentials -------------------------------------------------

    def resolve(self, kind: str, secret: str) -> Credential | None:
        """The credential behind a cookie (``session``) or bearer (``token``) secret."""
        cached = self._credentials.get((kind, secret))
        if cached is not None:
            return cached
        digest = hash_secret(secret)
        table = sessions if kind == "session" else api_tokens
        query = select(table.c.id, table.c.user_id).where(table.c.token_hash == digest)
        if kind == "session":
            query = query.where(sessions.c.expires_at > utcnow())
        row = self.db.read(lambda conn: conn.execute(query).first())
        if row is None:
            return None
        credential = Credential(user_id=row.user_id, kind=kind, id=row.id)
        # Keyed by the secret itself, which this process holds anyway while it
        # serves the request: hashing it again on every hit costs more than the look-up.
        self._credentials.put((kind, secret), credential)
        return credential

    def live_credentials(self, session_ids: set[int], token_ids: set[int]) -> tuple[set[int], set[int]]:
        """Which of these sessions (unexpired) and tokens still exist: long-lived connections re-check theirs."""

        def work(conn: Connection) -> tuple[set[int], set[int]]:
            live_sessions: set[int] = set()
            live_tokens: set[int] = set()
            if session_ids:
                query = select(sessions.c.id).where(sessions.c.id.in_(session_ids), sessions.c.expires_at > utcnow())
                live_sessions = set(conn.execute(query).scalars())
            if token_ids:
                live_tokens = set(conn.execute(select(api_tokens.c.id).where(api_tokens.c.id.in_(token_ids))).scalars())
            return live_sessions, live_tokens

        return self.db.read(work)

    def resolve_cached(self, kind: str, secret: str) -> tuple[Credential, User] | None:
        """:meth:`resolve_user` answered from the cache alone; None on any miss."""
        credential = self._credentials.get((kind, secret))
        if credential is None:
            return None
        user = self._users.get(credential.user_id)
        return None if user is None else (credential, user)

    def resolve_user(self, kind: str, secret: str) -> tuple[Credential, User] | None:
        """The credential and its user, or None when the secret is unknown, expired or revoked."""
        credential = self.resolve(kind, secret)
        if credential is None:
            return None
        user = self.user_by_id(credential.user_id)
        return None if user is None else (credential, user)
