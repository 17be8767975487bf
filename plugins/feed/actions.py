"""What the feed's API and its pages both do: write a post or repost one, and tell whoever it concerns."""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from kernel import Kernel, User
from plugins.feed.posts import FEED, Feed, Written


def feed_of(kernel: Kernel) -> Feed:
    """The deployment's feed service (``register_routes`` puts it there)."""
    return FEED.of(kernel)


async def _tell(kernel: Kernel, author: User, written: Written) -> None:
    """Notifications for a new post: the people it mentions, the author it answers or quotes."""
    post = written.post
    url = f"/feed/posts/{post['id']}"
    name = f"@{author.username}"
    told: set[int] = set()
    if written.replied_to is not None:
        await kernel.notifications.notify(written.replied_to, "feed.reply", f"{name} replied to your post", url=url, actor=author)
        told.add(written.replied_to.id)
    if written.quoted is not None and written.quoted.id not in told:
        await kernel.notifications.notify(written.quoted, "feed.quote", f"{name} quoted your post", url=url, actor=author)
        told.add(written.quoted.id)
    for user in written.mentioned:
        if user.id not in told:
            await kernel.notifications.notify(user, "feed.mention", f"{name} mentioned you", url=url, actor=author)


async def _tell_repost(kernel: Kernel, reposter: User, original: dict[str, Any]) -> None:
    """Tell a post's author that someone reposted it."""
    author = await anyio.to_thread.run_sync(kernel.user, original["author"]["username"])
    if author is not None and author.id != reposter.id:
        url = f"/feed/posts/{original['id']}"
        await kernel.notifications.notify(author, "feed.repost", f"@{reposter.username} reposted your post", url=url, actor=reposter)


async def _announce(kernel: Kernel, author: User, post: dict[str, Any]) -> None:
    """Tell the author's followers' open home timelines that there is something new (the "N new posts" bar)."""
    message = {"type": "feed.new_post", "post_id": post["id"], "author": author.username}
    # One message per follower: cheap in one process, and what a bus can route. An account with
    # millions of followers would want a topic per author instead (docs/feed.md).
    for follower_id in await anyio.to_thread.run_sync(kernel.follower_ids, author):
        await kernel.realtime.send_to_user(follower_id, message)


async def publish(
    kernel: Kernel, author: User, text: str, reply_to: int | None = None, quote_of: int | None = None, media: list[int] | None = None
) -> dict[str, Any]:
    """Write a post, notify the people it concerns, and tell followers' open timelines; returns the post."""
    written = await anyio.to_thread.run_sync(feed_of(kernel).create, author, text, reply_to, quote_of, media)
    await _tell(kernel, author, written)
    await _announce(kernel, author, written.post)
    return written.post


async def repost(kernel: Kernel, reposter: User, post_id: int) -> tuple[dict[str, Any], bool]:
    """Repost (again is a no-op), telling the author the first time; (the repost, whether it is new)."""
    answer, created = await anyio.to_thread.run_sync(feed_of(kernel).repost, reposter, post_id)
    original = answer.get("repost_of") or {}
    if created and original.get("author"):
        await _tell_repost(kernel, reposter, original)
    return answer, created
