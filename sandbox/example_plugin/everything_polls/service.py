"""Polls: a question with 2 to 4 answers on one of its author's posts, one vote per person, open for a while."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from everything_polls.models import polls, votes
from kernel import ApiError, Kernel, PluginState, User, inserted_id, iso, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


class Posts(Protocol):
    """What polls use of the feed plugin's public service: one post as its API shows it."""

    def get(self, viewer: User | None, post_id: int) -> dict[str, Any]: ...


# The feed's service (the manifest requires the feed, so it runs whenever polls run), and this plugin's own.
FEED: PluginState[Posts] = PluginState("feed")


def unknown_poll() -> ApiError:
    return ApiError(404, "unknown_poll", "There is no such poll.")


class Polls:
    """Every poll of one deployment. Blocking: run off the event loop."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def create(self, author: User, post_id: int, question: str, options: list[str], hours: int) -> dict[str, Any]:
        """A poll on ``post_id``, which must be the author's own post (404 ``unknown_post`` otherwise)."""
        post = FEED.of(self.kernel).get(author, post_id)  # the feed says 404 for what is not there
        if post["author"]["username"] != author.username:
            raise ApiError(403, "not_your_post", "A poll goes on one of your own posts.")
        now = utcnow()
        values = {
            "post_id": post_id,
            "author_id": author.id,
            "question": question,
            "options": options,
            "closes_at": now + timedelta(hours=hours),
            "created_at": now,
        }
        poll_id = self.kernel.db.write(lambda conn: inserted_id(conn.execute(insert(polls).values(**values))))
        return self.get(author, poll_id)

    def vote(self, voter: User, poll_id: int, option: int) -> dict[str, Any]:
        """Vote once; 409 ``already_voted``, 409 ``poll_closed``, 422 for an answer the poll does not have."""
        poll = self._poll(poll_id)
        if poll.closes_at <= utcnow():
            raise ApiError(409, "poll_closed", "This poll has closed.")
        if not 0 <= option < len(poll.options):
            raise ApiError(422, "validation_error", f"option: 0 to {len(poll.options) - 1}.", field="option")
        try:
            self.kernel.db.write(lambda conn: conn.execute(insert(votes).values(poll_id=poll_id, user_id=voter.id, option=option)))
        except IntegrityError:
            raise ApiError(409, "already_voted", "You have voted in this poll already.") from None
        return self.get(voter, poll_id)

    def get(self, viewer: User | None, poll_id: int) -> dict[str, Any]:
        poll = self._poll(poll_id)

        def work(conn: Connection) -> tuple[dict[int, int], int | None]:
            counts: dict[int, int] = dict(
                conn.execute(select(votes.c.option, func.count()).where(votes.c.poll_id == poll_id).group_by(votes.c.option)).all()
            )
            mine = None
            if viewer is not None:
                mine = conn.execute(select(votes.c.option).where(votes.c.poll_id == poll_id, votes.c.user_id == viewer.id)).scalar()
            return counts, mine

        counts, mine = self.kernel.db.read(work)
        return {
            "id": poll.id,
            "post_id": poll.post_id,
            "question": poll.question,
            "options": [{"text": text, "votes": counts.get(index, 0)} for index, text in enumerate(poll.options)],
            "total_votes": sum(counts.values()),
            "your_vote": mine,
            "closes_at": iso(poll.closes_at),
            "open": poll.closes_at > utcnow(),
        }

    def on_post(self, viewer: User | None, post_id: int) -> list[dict[str, Any]]:
        ids = self.kernel.db.read(lambda conn: list(conn.execute(select(polls.c.id).where(polls.c.post_id == post_id).order_by(polls.c.id)).scalars()))
        return [self.get(viewer, poll_id) for poll_id in ids]

    def _poll(self, poll_id: int) -> Any:
        row = self.kernel.db.read(lambda conn: conn.execute(select(polls).where(polls.c.id == poll_id)).first())
        if row is None:
            raise unknown_poll()
        return row


POLLS: PluginState[Polls] = PluginState("polls")
