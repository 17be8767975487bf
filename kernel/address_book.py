"""The global address book: directory search, follows, contacts and blocks.

Blocks win everywhere: blocking removes follows both ways and the contact
entries both ways, and while a block stands neither side can follow the
other or add the other as a contact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    delete,
    exists,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from kernel.errors import ApiError
from kernel.identity import USER_COLUMNS, Identity, User, iso, user_from_row
from kernel.pagination import Page, decode_cursor, encode_cursor
from kernel.storage.database import Database
from kernel.storage.models import blocks, contacts, follows, users, utcnow

# Above every character a name can hold: the end of a prefix range.
_TOP = "\U0010ffff"


# The (from, to) columns of each relation table.
FOLLOWS = (follows.c.follower_id, follows.c.followee_id)
CONTACTS = (contacts.c.owner_id, contacts.c.contact_id)
BLOCKS = (blocks.c.blocker_id, blocks.c.blocked_id)


def _pair(columns: tuple[Any, Any], a: int, b: int) -> Any:
    """The row linking ``a`` to ``b`` in a relation table."""
    return and_(columns[0] == a, columns[1] == b)


def _either_way(columns: tuple[Any, Any], a: int, b: int) -> Any:
    return or_(_pair(columns, a, b), _pair(columns, b, a))


def _exists(conn: Connection, condition: Any) -> bool:
    return conn.execute(select(exists().where(condition))).scalar_one()


class AddressBook:
    """Relations between users, and the directory over all of them."""

    def __init__(self, db: Database, identity: Identity) -> None:
        self.db = db
        self.identity = identity

    # Relations plugins ask about --------------------------------------------

    def is_blocked(self, a: int, b: int) -> bool:
        """True when either user has blocked the other."""
        return self._ask(_either_way(BLOCKS, a, b))

    def follows(self, follower: int, followee: int) -> bool:
        """True when ``follower`` follows ``followee``."""
        return self._ask(_pair(FOLLOWS, follower, followee))

    def in_contacts(self, owner: int, other: int) -> bool:
        """True when ``other`` is in ``owner``'s address book."""
        return self._ask(_pair(CONTACTS, owner, other))

    def relation(self, viewer: int, other: int) -> dict[str, bool]:
        """Everything a profile page shows about the viewer's ties to ``other``, in one read."""
        questions = {
            "following": _pair(FOLLOWS, viewer, other),
            "followed_by": _pair(FOLLOWS, other, viewer),
            "in_contacts": _pair(CONTACTS, viewer, other),
            "blocking": _pair(BLOCKS, viewer, other),
            "blocked_by": _pair(BLOCKS, other, viewer),
        }
        return self.db.read(lambda conn: {name: _exists(conn, condition) for name, condition in questions.items()})

    def _ask(self, condition: Any) -> bool:
        return self.db.read(lambda conn: _exists(conn, condition))

    # Follows -----------------------------------------------------------------

    def follow(self, follower: User, followee: User) -> bool:
        """Follow; a no-op when already following. 403 ``blocked`` across a block. True when the follow is new."""
        if follower.id == followee.id:
            raise ApiError(422, "cannot_follow_self", "You cannot follow yourself.")

        def work(conn: Connection) -> bool:
            _refuse_across_block(conn, follower.id, followee.id, "follow")
            if _exists(conn, _pair(FOLLOWS, follower.id, followee.id)):
                return False
            conn.execute(insert(follows).values(follower_id=follower.id, followee_id=followee.id, created_at=utcnow()))
            _bump_counts(conn, follower.id, followee.id, +1)
            return True

        created = bool(self._write_relation(work))
        self.identity.forget_user(follower.id, followee.id)
        return created

    def unfollow(self, follower: User, followee: User) -> None:
        def work(conn: Connection) -> None:
            _remove_follow(conn, follower.id, followee.id)

        self._write_relation(work)
        self.identity.forget_user(follower.id, followee.id)

    def followers(self, user: User, cursor: str | None, limit: int) -> Page:
        return self._follow_page(user, cursor, limit, mine=follows.c.followee_id, theirs=follows.c.follower_id)

    def following(self, user: User, cursor: str | None, limit: int) -> Page:
        return self._follow_page(user, cursor, limit, mine=follows.c.follower_id, theirs=follows.c.followee_id)

    def _follow_page(self, user: User, cursor: str | None, limit: int, mine: Any, theirs: Any) -> Page:
        after = decode_cursor(cursor, str, int)
        query = (
            select(*USER_COLUMNS, follows.c.created_at.label("since"))
            .join(follows, theirs == users.c.id)
            .where(mine == user.id)
            .order_by(follows.c.created_at.desc(), users.c.id.desc())
            .limit(limit + 1)
        )
        if after is not None:
            since = _parse_time(after[0])
            query = query.where(
                or_(follows.c.created_at < since, and_(follows.c.created_at == since, users.c.id < after[1]))
            )
        rows = self.db.read(lambda conn: conn.execute(query).all())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].since.isoformat(), rows[-1].id) if more else None
        return Page([user_from_row(row) for row in rows], next_cursor)

    # Contacts ----------------------------------------------------------------

    def add_contact(self, owner: User, other: User, nickname: str) -> dict[str, Any]:
        """Add or update a contact; 403 ``blocked`` across a block."""
        if owner.id == other.id:
            raise ApiError(422, "cannot_add_self", "You cannot add yourself to your contacts.")

        def work(conn: Connection) -> bool:
            _refuse_across_block(conn, owner.id, other.id, "add")
            changed = conn.execute(update(contacts).where(_pair(CONTACTS, owner.id, other.id)).values(nickname=nickname)).rowcount
            if not changed:
                conn.execute(insert(contacts).values(owner_id=owner.id, contact_id=other.id, nickname=nickname, created_at=utcnow()))
            return not changed

        created = self._write_relation(work)
        return {"user": other, "nickname": nickname, "created": created}

    def remove_contact(self, owner: User, other: User) -> None:
        self.db.write(lambda conn: conn.execute(delete(contacts).where(_pair(CONTACTS, owner.id, other.id))))

    def list_contacts(self, owner: User, cursor: str | None, limit: int) -> Page:
        query = (
            select(*USER_COLUMNS, contacts.c.nickname, contacts.c.created_at.label("added_at"))
            .join(contacts, contacts.c.contact_id == users.c.id)
            .where(contacts.c.owner_id == owner.id)
        )
        rows, next_cursor = self._page_by_username(query, cursor, limit)
        results = [{"user": user_from_row(row), "nickname": row.nickname, "added_at": iso(row.added_at)} for row in rows]
        return Page(results, next_cursor)

    # Blocks ------------------------------------------------------------------

    def block(self, blocker: User, blocked: User) -> None:
        """Block, removing follows and contacts both ways; a no-op when already blocked."""
        if blocker.id == blocked.id:
            raise ApiError(422, "cannot_block_self", "You cannot block yourself.")

        def work(conn: Connection) -> None:
            _lock_pair(conn, blocker.id, blocked.id)
            if _exists(conn, _pair(BLOCKS, blocker.id, blocked.id)):
                return
            conn.execute(insert(blocks).values(blocker_id=blocker.id, blocked_id=blocked.id, created_at=utcnow()))
            _remove_follow(conn, blocker.id, blocked.id)
            _remove_follow(conn, blocked.id, blocker.id)
            conn.execute(delete(contacts).where(_either_way(CONTACTS, blocker.id, blocked.id)))

        self._write_relation(work)
        self.identity.forget_user(blocker.id, blocked.id)

    def unblock(self, blocker: User, blocked: User) -> None:
        self.db.write(lambda conn: conn.execute(delete(blocks).where(_pair(BLOCKS, blocker.id, blocked.id))))

    def list_blocks(self, blocker: User, cursor: str | None, limit: int) -> Page:
        query = select(*USER_COLUMNS).join(blocks, blocks.c.blocked_id == users.c.id).where(blocks.c.blocker_id == blocker.id)
        rows, next_cursor = self._page_by_username(query, cursor, limit)
        return Page([user_from_row(row) for row in rows], next_cursor)

    def _page_by_username(self, query: Any, cursor: str | None, limit: int) -> tuple[Sequence[Row[Any]], str | None]:
        """One page of ``query``'s rows in username order, and the cursor to the next."""
        after = decode_cursor(cursor, str)
        query = query.order_by(users.c.username_lower).limit(limit + 1)
        if after is not None:
            query = query.where(users.c.username_lower > after[0])
        rows = self.db.read(lambda conn: conn.execute(query).all())
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], encode_cursor(rows[limit - 1].username.lower())

    def following_ids(self, user_id: int) -> list[int]:
        """The ids of everyone ``user_id`` follows."""
        query = select(follows.c.followee_id).where(follows.c.follower_id == user_id)
        return list(self.db.read(lambda conn: conn.execute(query).scalars().all()))

    def following_query(self, user_id: int) -> Any:
        """SELECT the ids ``user_id`` follows, and ``user_id`` itself."""
        return select(follows.c.followee_id).where(follows.c.follower_id == user_id).union_all(select(literal(user_id)))

    def follower_ids(self, user_id: int) -> list[int]:
        """The ids of everyone who follows ``user_id``."""
        query = select(follows.c.follower_id).where(follows.c.followee_id == user_id)
        return list(self.db.read(lambda conn: conn.execute(query).scalars().all()))

    def blocked_either_way(self, user_id: int) -> set[int]:
        """Every user who blocked ``user_id`` or whom ``user_id`` blocked."""
        query = select(blocks.c.blocked_id).where(blocks.c.blocker_id == user_id).union(
            select(blocks.c.blocker_id).where(blocks.c.blocked_id == user_id)
        )
        return set(self.db.read(lambda conn: conn.execute(query).scalars().all()))

    # Directory -----------------------------------------------------------------

    def search(self, q: str, limit: int, cursor: str | None, viewer_id: int | None = None) -> Page:
        """Prefix search over usernames and display names, case-insensitive.

        Each user is listed once, at the smaller of its matching names; the
        order is that name, then usernames before display names, then id, so
        an exact username match always comes first. Users on either side of
        a block with the viewer are left out.
        """
        prefix = " ".join(q.split()).lower().lstrip("@")
        if not prefix:
            return Page([], None)
        after = decode_cursor(cursor, str, int, int)
        position = (str(after[0]), int(after[1]), int(after[2])) if after else None
        hidden = self.blocked_either_way(viewer_id) if viewer_id is not None else set()
        found: list[tuple[tuple[str, int, int], User]] = []
        want = limit + 1
        while len(found) < want:
            batch, position = self.db.read(partial(_directory_batch, prefix=prefix, after=position, limit=want + len(hidden)))
            found.extend(item for item in batch if item[1].id not in hidden)
            if position is None:
                break
        found = found[:want]
        more = len(found) > limit
        found = found[:limit]
        next_cursor = encode_cursor(*found[-1][0]) if more else None
        return Page([user for _, user in found], next_cursor)

    # Shared -------------------------------------------------------------------

    def _write_relation(self, work: Any) -> Any:
        try:
            return self.db.write(work)
        except IntegrityError:
            # A concurrent request wrote the same row first; the state is what was asked.
            return None


Key = tuple[str, int, int]

# The directory's range scans, built once: building them per call cost more than running them.
_SCAN_COLUMNS = (*USER_COLUMNS, users.c.username_lower, users.c.display_lower)
_BY_USERNAME = (
    select(*_SCAN_COLUMNS)
    .where(users.c.username_lower >= bindparam("lo"), users.c.username_lower < bindparam("hi"))
    .order_by(users.c.username_lower)
    .limit(bindparam("limit"))
)
_BY_USERNAME_AFTER = _BY_USERNAME.where(users.c.username_lower > bindparam("after_name"))
_BY_DISPLAY = (
    select(*_SCAN_COLUMNS)
    .where(users.c.display_lower >= bindparam("lo"), users.c.display_lower < bindparam("hi"))
    .order_by(users.c.display_lower, users.c.id)
    .limit(bindparam("limit"))
)
# After a username key: every display name equal to it comes later (rank 1 > 0).
_BY_DISPLAY_AFTER_USERNAME = _BY_DISPLAY.where(users.c.display_lower >= bindparam("after_name"))
_BY_DISPLAY_AFTER_DISPLAY = _BY_DISPLAY.where(
    or_(
        users.c.display_lower > bindparam("after_name"),
        and_(users.c.display_lower == bindparam("after_name"), users.c.id > bindparam("after_id")),
    )
)


def _directory_batch(
    conn: Connection, prefix: str, after: Key | None, limit: int
) -> tuple[list[tuple[Key, User]], Key | None]:
    """Users in directory order after ``after``, and where the next batch starts.

    Two index range scans of ``limit`` rows, one per name column, merged by
    the key (name, rank, id) with rank 0 for usernames and 1 for display
    names. A user matching on both is kept only at its smaller key. Only
    keys up to the last row of a scan that came back full are certain to be
    complete, so the batch stops there; the position is None when both
    scans are exhausted.
    """
    params: dict[str, Any] = {"lo": prefix, "hi": prefix + _TOP, "limit": limit}
    if after is None:
        by_username, by_display = _BY_USERNAME, _BY_DISPLAY
    else:
        params["after_name"], rank, params["after_id"] = after
        # (u, 0, id) > (name, rank, user_id) comes down to u > name: usernames are unique.
        by_username = _BY_USERNAME_AFTER
        by_display = _BY_DISPLAY_AFTER_DISPLAY if rank == 1 else _BY_DISPLAY_AFTER_USERNAME
    merged: list[tuple[Key, User]] = []
    boundary: Key | None = None
    username_rows = conn.execute(by_username, params).all()
    for row in username_rows:
        if row.display_lower.startswith(prefix) and row.display_lower < row.username_lower:
            continue  # listed at its display name
        merged.append(((row.username_lower, 0, row.id), user_from_row(row)))
    if len(username_rows) == limit:
        boundary = (username_rows[-1].username_lower, 0, username_rows[-1].id)
    display_rows = conn.execute(by_display, params).all()
    for row in display_rows:
        if row.username_lower.startswith(prefix) and row.username_lower <= row.display_lower:
            continue  # listed at its username
        merged.append(((row.display_lower, 1, row.id), user_from_row(row)))
    if len(display_rows) == limit:
        last = (display_rows[-1].display_lower, 1, display_rows[-1].id)
        boundary = last if boundary is None else min(boundary, last)
    merged.sort(key=lambda item: item[0])
    if boundary is not None:
        merged = [item for item in merged if item[0] <= boundary]
    return merged, boundary


def _lock_pair(conn: Connection, a: int, b: int) -> None:
    """Lock both users' rows until the transaction ends (PostgreSQL; SQLite's writes are serial anyway).

    Follow, contact and block each check the other side's state, then write;
    without the lock a follow and a block sent at the same moment could both
    pass their checks and leave a follow across a block.
    """
    conn.execute(select(users.c.id).where(users.c.id.in_([a, b])).order_by(users.c.id).with_for_update())


def _refuse_across_block(conn: Connection, a: int, b: int, verb: str) -> None:
    _lock_pair(conn, a, b)
    if _exists(conn, _either_way(BLOCKS, a, b)):
        raise ApiError(403, "blocked", f"You cannot {verb} this user: one of you has blocked the other.")


def _remove_follow(conn: Connection, follower: int, followee: int) -> None:
    removed = conn.execute(delete(follows).where(_pair(FOLLOWS, follower, followee))).rowcount
    if removed:
        _bump_counts(conn, follower, followee, -1)


def _bump_counts(conn: Connection, follower: int, followee: int, step: int) -> None:
    conn.execute(update(users).where(users.c.id == follower).values(following_count=users.c.following_count + step))
    conn.execute(update(users).where(users.c.id == followee).values(followers_count=users.c.followers_count + step))


def _parse_time(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ApiError(422, "invalid_cursor", "cursor: not a cursor this endpoint gave out", field="cursor") from None
