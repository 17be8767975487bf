"""The polls' part of ``everything sandbox``: a lunch poll on a post of Maya's, with some votes already in."""

from __future__ import annotations

from functools import partial

import anyio.to_thread
import httpx

from everything_polls.service import POLLS
from kernel import Kernel, SandboxWorld

AUTHOR = "maya_chen"
TEXT = "Team lunch on Friday: vote below, the poll closes tomorrow. #lunch"
QUESTION = "What's for lunch?"
OPTIONS = ["Tacos", "Ramen", "Falafel", "Pizza"]


async def seed(kernel: Kernel, world: SandboxWorld) -> None:
    """Post as the author through the feed's API (polls never import the feed), put the poll on it, let a few people vote."""
    if AUTHOR not in world.users:
        return
    headers = {"Authorization": f"Bearer {world.token(AUTHOR, 'sandbox polls')}"}
    async with httpx.AsyncClient(base_url=world.url, headers=headers, trust_env=False, timeout=30) as client:
        response = await client.post("/api/feed/posts", json={"text": TEXT})
        response.raise_for_status()
    polls = POLLS.of(kernel)
    author = world.user(AUTHOR)
    poll = await anyio.to_thread.run_sync(partial(polls.create, author, response.json()["id"], QUESTION, OPTIONS, 24))
    voters = world.random.sample([person.username for person in world.humans if person.username != AUTHOR], 8)
    for username in voters:
        await anyio.to_thread.run_sync(partial(polls.vote, world.user(username), poll["id"], world.random.randrange(len(OPTIONS))))
    world.note(f'polls: @{AUTHOR} asks "{QUESTION}" with {len(voters)} votes in, at {world.url}/polls/{poll["id"]}')
