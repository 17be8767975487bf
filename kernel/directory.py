"""The directory: finding people by username, and what one person does to another (follow, keep as a
contact, block), the same way from every surface.

The JSON API, the pages, the admin tools and the sandbox go through
:class:`Directory`, so a follow always notifies the person followed, a block
always wins over follows and contacts, and an unknown username is always the
same 404. The relations themselves are stored by :mod:`kernel.address_book`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio.to_thread

from kernel.errors import not_found
from kernel.identity import User

if TYPE_CHECKING:
    from kernel.app import Kernel


class Directory:
    """One deployment's look-ups and relations. Every method runs its blocking work off the event loop."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    async def find(self, username: str) -> User:
        """The user by username, in any case; 404 ``not_found`` when there is none."""
        user = await anyio.to_thread.run_sync(self.kernel.identity.user_by_username, username)
        if user is None:
            raise not_found(f"No user @{username}.")
        return user

    async def follow(self, follower: User, followee: User) -> None:
        """Follow ``followee``; when the follow is new, they are told (``kernel.follow``)."""
        if await anyio.to_thread.run_sync(self.kernel.address_book.follow, follower, followee):
            await self.kernel.notifications.notify(
                followee,
                "kernel.follow",
                f"{name_of(follower)} followed you",
                url=f"/@{follower.username}",
                actor=follower,
            )

    async def unfollow(self, follower: User, followee: User) -> None:
        """Stop following ``followee``; nothing happens when there was no follow."""
        await anyio.to_thread.run_sync(self.kernel.address_book.unfollow, follower, followee)

    async def add_contact(self, owner: User, other: User, nickname: str = "") -> bool:
        """Keep ``other`` in ``owner``'s address book under ``nickname`` (or rename them there); True when newly added."""
        added = await anyio.to_thread.run_sync(self.kernel.address_book.add_contact, owner, other, nickname)
        return bool(added["created"])

    async def remove_contact(self, owner: User, other: User) -> None:
        """Take ``other`` out of ``owner``'s address book; nothing happens when they were not in it."""
        await anyio.to_thread.run_sync(self.kernel.address_book.remove_contact, owner, other)

    async def block(self, blocker: User, blocked: User) -> None:
        """Block ``blocked``: the follows and contacts between the two go, both ways, and cannot come back while it stands."""
        await anyio.to_thread.run_sync(self.kernel.address_book.block, blocker, blocked)

    async def unblock(self, blocker: User, blocked: User) -> None:
        """Lift a block; what it removed stays removed."""
        await anyio.to_thread.run_sync(self.kernel.address_book.unblock, blocker, blocked)


def name_of(user: User) -> str:
    """How a notification names someone: ``Alice (@alice)``, or ``@alice`` when the two are the same."""
    if user.display_name == user.username:
        return f"@{user.username}"
    return f"{user.display_name} (@{user.username})"
