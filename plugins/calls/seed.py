"""The calls plugin's part of ``everything sandbox``: a call history among the cast, and bots that answer calls.

History: past calls — answered audio and video calls with their lengths,
missed calls, declined ones — back-dated over the last week. A call's
record is only ever written live (``Records.create`` stamps it now), so the
past is written straight into this plugin's own ``calls_calls`` table, in
the shape a finished call leaves there. Every seeded call is one the
screening would let through today (the caller's plan, the callee's
settings, blocks), and a missed call leaves the notification a live one
leaves.

Bots: every bot of the cast but ``radio_bot`` (the Spaces plugin's) takes
calls from anyone and answers at once, through the same Python client
anyone can run against the API, with a tone and a moving test picture.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from kernel import Kernel, SandboxWorld, User
from plugins.calls.client import CallClient
from plugins.calls.models import calls as calls_table
from plugins.calls.records import ENDED
from plugins.calls.service import CALLS

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from plugins.calls.service import Calls

# The bots that answer calls, and the pitch each answers with (the cast's bios promise these).
BOT_TONES = {"ringo_bot": 440.0, "tess_bot": 660.0}
# Those a demo starts with: each gets a history of their own.
FEATURED = ("maya_chen", "sam_rivera", "olivia_ops")
PAST_CALLS = 32
DAYS_BACK = 7
RING_TIMEOUT_SECONDS = 60  # what a timeout looks like in the history, whatever the deployment's setting now
# How a past call went: answered (then hung up), or the end reasons of an unanswered one.
ANSWERED, TIMEOUT, CANCELLED, REJECTED = "answered", "timeout", "cancelled", "rejected"


@dataclass(frozen=True)
class PastCall:
    """One finished call to write: who, what, when, and how it ended."""

    caller: str
    callee: str
    media: str
    invited_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    end_reason: str
    ended_by: str | None


async def seed(kernel: Kernel, world: SandboxWorld) -> None:
    """Open the bots to everyone and start them, then write the past calls; note both."""
    service = CALLS.of(kernel)
    bots = [person.username for person in world.bots if person.username in BOT_TONES]  # the others are other plugins'
    # Before the history, so that calls to the bots pass the same screening as anyone's.
    for name in bots:
        await service.put_settings(world.user(name), True, ["everyone"])
    host_addresses = list(service.settings.host_addresses) or None
    for name in bots:
        world.background(f"@{name} answers calls", _answering(world, name, BOT_TONES[name], host_addresses))

    past = await anyio.to_thread.run_sync(_plan_history, service, world, bots)
    await anyio.to_thread.run_sync(_write, service, world, past)
    for call_id, _ in past:
        await _note_missed(service, call_id)

    named = " or ".join(f"@{name}" for name in bots) or "nobody"
    world.note(f"calls: call {named}: they answer with a tone and a test picture; {len(past)} past calls in the history")


def _answering(world: SandboxWorld, username: str, tone_hz: float, host_addresses: list[str] | None) -> Any:
    """The bot's work: a client that answers every call, connected until the sandbox stops."""

    async def work() -> None:
        client = CallClient(world.url, token=world.token(username), auto_answer=True, tone_hz=tone_hz, host_addresses=host_addresses)
        async with client:
            await asyncio.Event().wait()

    return work


# Planning the history ------------------------------------------------------------------------


def _plan_history(service: Calls, world: SandboxWorld, bots: list[str]) -> list[tuple[str, PastCall]]:
    """The past calls, oldest first, each with its call id; only between people the screening lets call each other."""
    rng = world.random
    people = [person.username for person in world.humans] + bots
    users = {name: world.user(name) for name in people}
    allowed = _allowed_pairs(service, users, set(bots))
    if not allowed:
        return []
    pairs = list(allowed)
    # (caller, callee, the outcome or None for a random one)
    wanted: list[tuple[str, str, str | None]] = []
    # The featured logins first, with every kind of entry, so that each history shows them all.
    for name in FEATURED:
        incoming = [pair for pair in pairs if pair[1] == name and pair[0] not in FEATURED]
        outgoing = [pair for pair in pairs if pair[0] == name and pair[1] not in bots]
        # Taken, missed and declined calls, placed ones answered and declined; someone who may
        # not place calls (no plan) only takes them.
        plan = [(incoming, ANSWERED), (incoming, TIMEOUT), (incoming, REJECTED), (incoming, None)]
        plan += [(outgoing, ANSWERED), (outgoing, REJECTED), (outgoing, None)] if outgoing else [(incoming, ANSWERED), (incoming, CANCELLED)]
        for choices, outcome in plan:
            if choices:
                caller, callee = rng.choice(choices)
                wanted.append((caller, callee, outcome))
    # Somebody tried the bots: short video checks.
    for name in bots:
        callers = [pair for pair in pairs if pair[1] == name]
        wanted.extend((caller, callee, ANSWERED) for caller, callee in rng.sample(callers, min(len(callers), 2)))
    while len(wanted) < PAST_CALLS:
        caller, callee = rng.choice(pairs)
        wanted.append((caller, callee, None))

    now = world.now
    busy: dict[str, list[tuple[datetime, datetime]]] = {}
    past: list[PastCall] = []
    for caller, callee, outcome in wanted:
        # Nobody is in two calls at once: draw another time when either party was on the phone then.
        for _ in range(20):
            call = _one_call(caller, callee, allowed[(caller, callee)], now, rng, to_bot=callee in bots, outcome=outcome)
            span = (call.invited_at - timedelta(minutes=2), call.ended_at + timedelta(minutes=2))
            if not any(start < span[1] and span[0] < end for name in (caller, callee) for start, end in busy.get(name, [])):
                break
        else:
            continue
        for name in (caller, callee):
            busy.setdefault(name, []).append(span)
        past.append(call)
    past.sort(key=lambda call: call.invited_at)
    return [(str(uuid.UUID(int=rng.getrandbits(128), version=4)), call) for call in past]


def _allowed_pairs(service: Calls, users: dict[str, User], bots: set[str]) -> dict[tuple[str, str], list[str]]:
    """(caller, callee) → the media the screening allows between them now; bots never place calls."""
    allowed: dict[tuple[str, str], list[str]] = {}
    for caller_name, caller in users.items():
        if caller_name in bots:
            continue
        for callee_name, callee in users.items():
            if callee_name == caller_name:
                continue
            media = [kind for kind in ("audio", "video") if service.screening.verdict(caller, callee, kind).allowed]
            if media:
                allowed[(caller_name, callee_name)] = media
    return allowed


def _one_call(
    caller: str, callee: str, media_allowed: list[str], now: datetime, rng: random.Random, *, to_bot: bool, outcome: str | None
) -> PastCall:
    """One believable call: mostly answered, sometimes missed or declined; bots always answer, briefly, with video."""
    media = media_allowed[-1] if to_bot else rng.choice(media_allowed)
    # Waking hours over the last week, never in the last few minutes (those would look live).
    day = now - timedelta(days=rng.randint(0, DAYS_BACK - 1))
    invited = day.replace(hour=rng.randint(8, 22), minute=rng.randint(0, 59), second=rng.randint(0, 59), microsecond=0)
    if invited > now - timedelta(hours=2):
        invited -= timedelta(days=1)
    if outcome is None:
        outcome = ANSWERED if to_bot else rng.choices([ANSWERED, TIMEOUT, CANCELLED, REJECTED], weights=[62, 14, 10, 14])[0]
    if outcome == ANSWERED:
        answered = invited + timedelta(seconds=rng.randint(1, 3) if to_bot else rng.randint(3, 15))
        length = rng.randint(20, 90) if to_bot else rng.choice([rng.randint(45, 300), rng.randint(300, 1500), rng.randint(1500, 3600)])
        ended_by = caller if to_bot or rng.random() < 0.5 else callee
        return PastCall(caller, callee, media, invited, answered, answered + timedelta(seconds=length), "hangup", ended_by)
    if outcome == TIMEOUT:
        return PastCall(caller, callee, media, invited, None, invited + timedelta(seconds=RING_TIMEOUT_SECONDS), TIMEOUT, None)
    if outcome == CANCELLED:
        return PastCall(caller, callee, media, invited, None, invited + timedelta(seconds=rng.randint(5, 30)), CANCELLED, caller)
    return PastCall(caller, callee, media, invited, None, invited + timedelta(seconds=rng.randint(3, 12)), REJECTED, callee)


# Writing it --------------------------------------------------------------------------------


def _write(service: Calls, world: SandboxWorld, past: list[tuple[str, PastCall]]) -> None:
    """Insert the finished calls in one transaction, oldest first (the history lists by row id, newest first)."""
    if not past:
        return
    rows = [
        {
            "call_id": call_id,
            "caller_id": world.user(call.caller).id,
            "callee_id": world.user(call.callee).id,
            "media": call.media,
            "state": ENDED,
            "invited_at": call.invited_at,
            "answered_at": call.answered_at,
            "ended_at": call.ended_at,
            "end_reason": call.end_reason,
            "ended_by_id": world.user(call.ended_by).id if call.ended_by else None,
            # A finished call keeps no connection, offer or answer: the records module clears them at the end.
            "caller_connection": None,
            "callee_connection": None,
            "offer": None,
            "answer": None,
        }
        for call_id, call in past
    ]

    def work(conn: Connection) -> None:
        conn.execute(calls_table.insert(), rows)

    service.kernel.db.write(work)


async def _note_missed(service: Calls, call_id: str) -> None:
    """The missed-call notification, made by the switchboard exactly as when a call ends unanswered."""
    call = await anyio.to_thread.run_sync(service.records.get, call_id)
    if call is not None and call.missed:  # as the records module counts a missed call
        await service.switchboard.note_missed(call)

