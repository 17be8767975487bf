"""Posts: writing, deleting, liking and reposting them, and reading them as timelines and threads.

Every method here is blocking (database work); routes run them in the thread
pool. Timelines are read on demand ("fan-out on read"): the newest posts
whose author the reader follows, by the posts' own index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import regex
from sqlalchemy import ARRAY, Connection, Integer, Row, and_, any_, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from kernel import ApiError, Kernel, Page, PluginState, User, decode_cursor, encode_cursor, iso, render_text, utcnow
from plugins.feed.entities import CASHTAG, HASHTAG, mention_names
from plugins.feed.media import MAX_ID, MediaLibrary
from plugins.feed.models import cashtags, hashtags, likes, mentions, posts
from plugins.feed.settings import FeedSettings
from plugins.feed.storage import feed_storage

SHORT_LIMIT = 280
LONG_LIMIT = 25_000
LONGFORM = "feed.longform"


def grapheme_count(text: str) -> int:
    """Characters as people count them: an emoji with its modifiers, or a letter with its accents, is one."""
    return len(regex.findall(r"\X", text))


def _post(conn: Connection, post_id: int) -> Row[Any] | None:
    """The post's row, deleted or not; None when there is none."""
    return conn.execute(select(posts).where(posts.c.id == post_id)).first()


@dataclass
class Written:
    """A new post, and who should hear of it."""

    post: dict[str, Any]
    mentioned: list[User] = field(default_factory=list)
    replied_to: User | None = None
    quoted: User | None = None


class Feed:
    """The feed of one deployment."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.db = kernel.db
        limits = kernel.plugin_settings("feed") or FeedSettings()
        self.media = MediaLibrary(kernel, feed_storage(kernel), limits)

    # Writing ---------------------------------------------------------------------------

    def check_text(self, author: User, text: str) -> str:
        """The text if ``author`` may post it: blank 422, over 280 needs ``feed.longform`` (402), over 25,000 422."""
        if not text.strip():
            raise ApiError(422, "validation_error", "text: write something", field="text")
        length = grapheme_count(text)
        if length > LONG_LIMIT:
            raise ApiError(422, "post_too_long", f"text: at most {LONG_LIMIT:,} characters ({length:,} given)", field="text")
        if length > SHORT_LIMIT:
            self.kernel.entitlements.require(author, LONGFORM)
        return text

    def create(
        self, author: User, text: str, reply_to: int | None = None, quote_of: int | None = None, media_ids: list[int] | None = None
    ) -> Written:
        """Write a post (a reply, a quote); committed whole with its hashtags, mentions and attachments, or not at all."""
        self.check_text(author, text)
        blocked = self.kernel.blocked_ids(author)
        tags = sorted({match.group(1).lower() for match in HASHTAG.finditer(text)})
        symbols = sorted({match.group(1).upper() for match in CASHTAG.finditer(text)})
        named = [user for name in mention_names(text) if (user := self.kernel.user(name)) is not None]
        mentioned = [user for user in named if user.id != author.id and user.id not in blocked]

        def work(conn: Connection) -> tuple[int, int | None, int | None]:
            parent = self._target(conn, reply_to, blocked, "reply_to") if reply_to is not None else None
            quoted = self._target(conn, quote_of, blocked, "quote_of") if quote_of is not None else None
            values = {
                "author_id": author.id,
                "text": text,
                "created_at": utcnow(),
                "reply_to_id": reply_to,
                "quote_of_id": quote_of,
                "repost_of_id": None,
                "root_id": (parent.root_id or parent.id) if parent is not None else None,
                "likes_count": 0,
                "reposts_count": 0,
                "replies_count": 0,
                "deleted": False,
            }
            post_id = conn.execute(insert(posts).values(**values).returning(posts.c.id)).scalar_one()
            if parent is None:
                conn.execute(update(posts).where(posts.c.id == post_id).values(root_id=post_id))
            else:
                conn.execute(update(posts).where(posts.c.id == parent.id).values(replies_count=posts.c.replies_count + 1))
            if tags:
                conn.execute(insert(hashtags), [{"tag": tag[:100], "post_id": post_id} for tag in tags])
            if symbols:
                conn.execute(insert(cashtags), [{"symbol": symbol, "post_id": post_id} for symbol in symbols])
            if mentioned:
                conn.execute(insert(mentions), [{"post_id": post_id, "user_id": user.id} for user in mentioned])
            self.media.attach(conn, author, post_id, media_ids or [])
            return post_id, parent.author_id if parent is not None else None, quoted.author_id if quoted is not None else None

        post_id, parent_author, quoted_author = self.db.write(work)
        post = self.to_json([self._row(post_id)], author, blocked)[0]
        replied_to = self.kernel.user_by_id(parent_author) if parent_author not in (None, author.id) else None
        quoted_user = self.kernel.user_by_id(quoted_author) if quoted_author not in (None, author.id) else None
        return Written(post, mentioned, replied_to, quoted_user)

    @staticmethod
    def _target(conn: Connection, post_id: int, blocked: set[int], field_name: str) -> Any:
        """A post one replies to or quotes: it must exist, not be deleted, and not be across a block."""
        row = conn.execute(select(posts).where(posts.c.id == post_id)).first() if 0 < post_id <= MAX_ID else None
        if row is None or row.deleted or row.repost_of_id is not None:
            raise ApiError(422, "unknown_post", f"{field_name}: no such post", field=field_name)
        if row.author_id in blocked:
            raise ApiError(403, "blocked", "You can't interact with this account's posts.")
        return row

    def delete(self, viewer: User, post_id: int) -> int | None:
        """Delete one's own post: its text goes, a thread keeps its place. 403 for another's post.

        Returns the id of the post it answered, where a page goes back to.
        """
        row = self._row(post_id)
        if row.author_id != viewer.id:
            raise ApiError(403, "forbidden", "You can only delete your own posts.")

        def work(conn: Connection) -> None:
            conn.execute(update(posts).where(posts.c.id == post_id).values(deleted=True, text=""))
            conn.execute(delete(hashtags).where(hashtags.c.post_id == post_id))
            conn.execute(delete(cashtags).where(cashtags.c.post_id == post_id))
            conn.execute(delete(mentions).where(mentions.c.post_id == post_id))
            if row.reply_to_id is not None:
                conn.execute(update(posts).where(posts.c.id == row.reply_to_id).values(replies_count=posts.c.replies_count - 1))
            if row.repost_of_id is not None:
                conn.execute(update(posts).where(posts.c.id == row.repost_of_id).values(reposts_count=posts.c.reposts_count - 1))

        self.db.write(work)
        self.media.remove_for_post(post_id)
        return row.reply_to_id

    def like(self, viewer: User, post_id: int, on: bool) -> dict[str, Any]:
        """Like or unlike; either is a no-op when already so. Returns the post."""
        blocked = self._blocked(viewer)
        row = self._visible_row(post_id, blocked)

        def work(conn: Connection) -> None:
            exists = conn.execute(select(likes.c.post_id).where(likes.c.post_id == row.id, likes.c.user_id == viewer.id)).first()
            if on and exists is None:
                conn.execute(insert(likes).values(post_id=row.id, user_id=viewer.id, created_at=utcnow()))
                conn.execute(update(posts).where(posts.c.id == row.id).values(likes_count=posts.c.likes_count + 1))
            elif not on and exists is not None:
                conn.execute(delete(likes).where(likes.c.post_id == row.id, likes.c.user_id == viewer.id))
                conn.execute(update(posts).where(posts.c.id == row.id).values(likes_count=posts.c.likes_count - 1))

        try:
            self.db.write(work)
        except IntegrityError:
            pass  # the same like, from a concurrent request: the state is what was asked
        return self.to_json([self._row(row.id)], viewer, blocked)[0]

    def repost(self, viewer: User, post_id: int) -> tuple[dict[str, Any], bool]:
        """Repost to one's followers; reposting again returns the existing repost. (post, created)."""
        blocked = self._blocked(viewer)
        row = self._visible_row(post_id, blocked)
        if row.repost_of_id is not None:
            row = self._visible_row(row.repost_of_id, blocked)

        def work(conn: Connection) -> tuple[int, bool]:
            existing = conn.execute(
                select(posts.c.id).where(posts.c.repost_of_id == row.id, posts.c.author_id == viewer.id, posts.c.deleted.is_(False))
            ).scalar()
            if existing is not None:
                return existing, False
            values = {
                "author_id": viewer.id, "text": "", "created_at": utcnow(), "reply_to_id": None, "quote_of_id": None,
                "repost_of_id": row.id, "root_id": None, "likes_count": 0, "reposts_count": 0, "replies_count": 0, "deleted": False,
            }
            new_id = conn.execute(insert(posts).values(**values).returning(posts.c.id)).scalar_one()
            conn.execute(update(posts).where(posts.c.id == row.id).values(reposts_count=posts.c.reposts_count + 1))
            return new_id, True

        repost_id, created = self.db.write(work)
        return self.to_json([self._row(repost_id)], viewer, blocked)[0], created

    # Reading ----------------------------------------------------------------------------

    def _row(self, post_id: int) -> Any:
        row = self.db.read(lambda conn: conn.execute(select(posts).where(posts.c.id == post_id)).first()) if 0 < post_id <= MAX_ID else None
        if row is None or row.deleted:
            raise ApiError(404, "not_found", "This post doesn't exist, or was deleted.")
        return row

    def _blocked(self, viewer: User | None) -> set[int]:
        """Whose posts ``viewer`` must not see: read once per request, handed to what needs it."""
        return self.kernel.blocked_ids(viewer) if viewer is not None else set()

    def _visible_row(self, post_id: int, blocked: set[int]) -> Any:
        row = self._row(post_id)
        if row.author_id in blocked:
            raise ApiError(403, "blocked", "You can't see or interact with this account's posts.")
        return row

    def get(self, viewer: User | None, post_id: int) -> dict[str, Any]:
        """One post as the API shows it; 404 when missing or deleted, 403 across a block."""
        blocked = self._blocked(viewer)
        return self.to_json([self._visible_row(post_id, blocked)], viewer, blocked)[0]

    def thread(self, viewer: User | None, post_id: int, cursor: str | None, limit: int) -> dict[str, Any]:
        """A post with the posts it answers (oldest first) and a page of its direct replies (oldest first)."""
        blocked = self._blocked(viewer)
        row = self._visible_row(post_id, blocked)
        ancestors: list[Row[Any]] = []
        parent_id = row.reply_to_id
        while parent_id is not None and len(ancestors) < 50:
            parent = self.db.read(partial(_post, post_id=parent_id))
            if parent is None:
                break
            ancestors.append(parent)
            parent_id = parent.reply_to_id
        ancestors.reverse()
        after = decode_cursor(cursor, int)
        query = select(posts).where(posts.c.reply_to_id == row.id, posts.c.deleted.is_(False)).order_by(posts.c.id).limit(limit + 1)
        if after is not None:
            query = query.where(posts.c.id > after[0])
        if blocked:
            query = query.where(posts.c.author_id.not_in(blocked))
        replies = self.db.read(lambda conn: conn.execute(query).all())
        more = len(replies) > limit
        replies = replies[:limit]
        shown_ancestors = [r for r in ancestors if not r.deleted and r.author_id not in blocked]
        # One to_json for the whole page: its likes, quoted posts and media are each one query.
        shown = {item["id"]: item for item in self.to_json([*shown_ancestors, row, *replies], viewer, blocked)}
        return {
            "ancestors": [shown.get(r.id) or {"id": r.id, "unavailable": True} for r in ancestors],
            "post": shown[row.id],
            "replies": [shown[r.id] for r in replies if r.id in shown],
            "next_cursor": encode_cursor(replies[-1].id) if more else None,
        }

    def home(self, viewer: User, cursor: str | None, limit: int) -> Page:
        """Posts by the people ``viewer`` follows and by ``viewer``, newest first."""
        if self.db.is_sqlite:
            authors: Any = posts.c.author_id.in_(self.kernel.following_query(viewer))
        else:
            # PostgreSQL turns the subquery into a slow nested loop; one array parameter plans well.
            ids = [viewer.id, *self.kernel.following_ids(viewer)]
            authors = posts.c.author_id == any_(bindparam("authors", ids, type_=ARRAY(Integer)))
        return self._page(viewer, authors, cursor, limit)

    def explore(self, viewer: User | None, cursor: str | None, limit: int) -> Page:
        """Everyone's recent posts (not replies), newest first."""
        return self._page(viewer, and_(posts.c.reply_to_id.is_(None), posts.c.repost_of_id.is_(None)), cursor, limit)

    def by_user(self, viewer: User | None, author: User, cursor: str | None, limit: int, with_replies: bool = False) -> Page:
        """A user's posts and reposts, newest first (replies too when asked)."""
        condition = posts.c.author_id == author.id
        if not with_replies:
            condition = and_(condition, posts.c.reply_to_id.is_(None))
        return self._page(viewer, condition, cursor, limit)

    def by_hashtag(self, viewer: User | None, tag: str, cursor: str | None, limit: int) -> Page:
        """The posts carrying ``#tag``, newest first."""
        tagged = select(hashtags.c.post_id).where(hashtags.c.tag == tag.lower().lstrip("#")[:100])
        return self._page(viewer, posts.c.id.in_(tagged), cursor, limit)

    def by_cashtag(self, viewer: User | None, symbol: str, cursor: str | None, limit: int) -> Page:
        """The posts mentioning ``$symbol``, newest first."""
        tagged = select(cashtags.c.post_id).where(cashtags.c.symbol == symbol.upper().lstrip("$")[:16])
        return self._page(viewer, posts.c.id.in_(tagged), cursor, limit)

    def _page(self, viewer: User | None, condition: Any, cursor: str | None, limit: int) -> Page:
        """A timeline page: the posts matching ``condition``, newest first, none across a block."""
        after = decode_cursor(cursor, int)
        # Ids first, from the index of live posts by author; whole rows only for the page.
        # "== False" rather than "IS 0": SQLite uses the partial index only for the former.
        ids = select(posts.c.id).where(condition, posts.c.deleted == False).order_by(posts.c.id.desc()).limit(limit + 1)  # noqa: E712
        if after is not None:
            ids = ids.where(posts.c.id < after[0])
        blocked = self._blocked(viewer)
        if blocked:
            ids = ids.where(posts.c.author_id.not_in(blocked))
        query = select(posts).where(posts.c.id.in_(ids.scalar_subquery())).order_by(posts.c.id.desc())
        rows = self.db.read(lambda conn: conn.execute(query).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(self.to_json(rows, viewer, blocked), encode_cursor(rows[-1].id) if more else None)

    # Showing --------------------------------------------------------------------------------

    def to_json(self, rows: Sequence[Row[Any]], viewer: User | None, blocked: set[int]) -> list[dict[str, Any]]:
        """Posts as the API shows them, with the posts they quote or repost, in as few queries as the page allows."""
        referenced = {row.quote_of_id for row in rows if row.quote_of_id} | {row.repost_of_id for row in rows if row.repost_of_id}
        inner: dict[int, Any] = {}
        if referenced:
            found = self.db.read(lambda conn: conn.execute(select(posts).where(posts.c.id.in_(referenced))).all())
            inner = {row.id: row for row in found}
        every = [*rows, *inner.values()]
        liked: set[int] = set()
        if viewer is not None and every:
            ids = [row.id for row in every]
            query = select(likes.c.post_id).where(likes.c.user_id == viewer.id, likes.c.post_id.in_(ids))
            liked = set(self.db.read(lambda conn: conn.execute(query).scalars().all()))
        authors = {row.author_id for row in every}
        self.kernel.entitlements.warm(authors)
        people = {author_id: self.kernel.user_by_id(author_id) for author_id in authors}
        attached = self.media.of_posts([row.id for row in every])

        def one(row: Any, nested: bool) -> dict[str, Any] | None:
            author = people.get(row.author_id)
            if author is None:
                return None
            html, _ = render_text(self.kernel, row.text)
            item: dict[str, Any] = {
                "id": row.id,
                "author": self.kernel.user_json(author),
                "text": row.text,
                "html": str(html),
                "created_at": iso(row.created_at),
                "reply_to": row.reply_to_id,
                "quote_of": None,
                "repost_of": None,
                "media": attached.get(row.id, []),
                "likes": row.likes_count,
                "reposts": row.reposts_count,
                "replies": row.replies_count,
                "liked_by_me": row.id in liked,
            }
            if not nested:
                for key, ref in (("quote_of", row.quote_of_id), ("repost_of", row.repost_of_id)):
                    if ref is not None:
                        target = inner.get(ref)
                        if target is None or target.deleted or target.author_id in blocked:
                            item[key] = {"id": ref, "unavailable": True}
                        else:
                            item[key] = one(target, nested=True)
            return item

        return [item for row in rows if (item := one(row, nested=False)) is not None]


FEED: PluginState[Feed] = PluginState("feed")
