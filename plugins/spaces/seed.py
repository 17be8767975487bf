"""The sandbox's Spaces: a live Space whose host is a bot speaking on stage, and one scheduled for tomorrow.

The bot is a real client (:class:`plugins.spaces.client.SpaceClient`): it
creates the Space through the API, joins with its microphone (a tone) and
invites whoever raises a hand, so that one person alone can try the stage.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from functools import partial

from kernel import Kernel, SandboxWorld
from plugins.spaces.client import SpaceClient, SpaceError
from plugins.spaces.service import SPACES

HOST_BOT = "radio_bot"
LIVE_TITLE = "Open mic: markets, coffee and whatever you bring"
SCHEDULED_HOST = "hana_sato"
SCHEDULED_TITLE = "Tech and markets, the weekly wrap"
TONE_HZ = 330.0
LIVE_WITHIN_SECONDS = 60


async def seed(kernel: Kernel, world: SandboxWorld) -> None:
    """Start the host bot's live Space and wait until it is on stage; schedule Hana's Space."""
    if HOST_BOT not in world.users:
        return
    addresses = kernel.plugin_settings("spaces").host_addresses or None
    live: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    async def host_a_space() -> None:
        try:
            async with SpaceClient(world.url, token=world.token(HOST_BOT), host_addresses=addresses) as bot:
                space = await bot.create(LIVE_TITLE)
                await bot.join(space["id"], speak=True, tone_hz=TONE_HZ)
                await bot.request({"type": "spaces.mute", "muted": False})  # everyone comes on stage muted
                if not live.done():  # the seeding may have given up waiting
                    live.set_result(space)
                await invite_raised_hands(bot)
        except Exception as exc:
            if not live.done():  # the seeding is waiting: tell it why, at once
                live.set_exception(exc)
            raise

    world.background(f"@{HOST_BOT} hosts a Space", host_a_space)
    try:
        space = await asyncio.wait_for(live, timeout=LIVE_WITHIN_SECONDS)
    except TimeoutError:
        raise TimeoutError(f"@{HOST_BOT}'s Space was not live within {LIVE_WITHIN_SECONDS} s") from None
    world.note(f'spaces: @{HOST_BOT} is live in "{LIVE_TITLE}" at {world.url}/spaces/{space["id"]} '
               "(raise your hand: the bot invites you on stage)")

    if SCHEDULED_HOST in world.users:
        tomorrow = (world.now + timedelta(days=1)).replace(hour=18, minute=0, second=0, microsecond=0)
        await SPACES.of(kernel).create(world.user(SCHEDULED_HOST), SCHEDULED_TITLE, tomorrow)
        world.note(f'spaces: @{SCHEDULED_HOST} has scheduled "{SCHEDULED_TITLE}" for tomorrow at 18:00 UTC')


def _hands_down(asked: set[str], client: SpaceClient) -> bool:
    """True once the Space's state lists none of ``asked`` with a raised hand."""
    return not (client.space and asked & set(client.space.get("hands", [])))


async def invite_raised_hands(bot: SpaceClient) -> None:
    """Invite every listener who raises a hand; when the stage is full, lower the hand so that they know."""
    while True:
        await bot.wait_for(lambda client: bool(client.space and client.space.get("hands")), timeout=None)
        asked = set(bot.space["hands"]) if bot.space else set()
        for username in sorted(asked):
            try:
                await bot.request({"type": "spaces.invite", "user": username})
            except SpaceError:
                with contextlib.suppress(SpaceError):  # they may have left meanwhile
                    await bot.request({"type": "spaces.lower_hand", "user": username})
        # Until the state says those hands are down, they are still listed: don't ask twice.
        await bot.wait_for(partial(_hands_down, asked), timeout=None)
