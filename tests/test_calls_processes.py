"""Calls across the processes of one deployment: two `everything serve` hosts on PostgreSQL and Redis, behind nginx.

Each side's reconnect deadline lives in the call row, so that a dropped
socket, a host stopped for a deploy (SIGTERM) or a host that dies (SIGKILL)
ends a call only when its party has not come back within the grace —
whichever host sweeps. The media is peer to peer: it never notices.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest

from kernel import ReceivedMedia
from plugins.calls.client import Call, CallClient
from tests.conftest import PASSWORD
from tests.deployment_kit import PRESENCE_SECONDS, RECONNECT_GRACE_SECONDS, Deployment, Host, deployment_marks
from tests.test_calls_media import ALICE_TONE, BOBBY_TONE, SECOND_OF_AUDIO, TIMEOUT, assert_tone, heard_audio

pytestmark = deployment_marks()

CLOSE_SERVICE_RESTART = 1012  # docs/realtime.md: the server is restarting; reconnect at once


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with Deployment(tmp_path_factory.mktemp("calls-processes")) as running:
        yield running


@pytest.fixture(autouse=True)
def every_host_running(deployment: Deployment) -> None:
    """Each test starts with both hosts up (one may have been stopped by the test before)."""
    deployment.start_all()
    deployment.mark_logs()


def ready_to_call(deployment: Deployment, caller: str, callee: str) -> tuple[str, str]:
    """Sign both up; ``caller`` gets premium (the CLI, over the bus) and ``callee`` follows them. Their API tokens."""
    tokens = []
    for username in (caller, callee):
        with httpx.Client(base_url=deployment.url, trust_env=False, timeout=30) as http:
            signed = http.post("/api/auth/signup", json={"username": username, "password": PASSWORD})
            assert signed.status_code == 201, signed.text
            minted = http.post("/api/auth/tokens", json={"name": "calls test"}, headers={"X-CSRF-Token": signed.headers["X-CSRF-Token"]})
            assert minted.status_code == 201, minted.text
            tokens.append(minted.json()["token"])
    deployment.cli("grant", caller, "premium")
    with httpx.Client(base_url=deployment.url, trust_env=False, timeout=30) as http:
        assert http.put(f"/api/users/{caller}/follow", headers={"Authorization": f"Bearer {tokens[1]}"}).status_code == 200
        allowed: set[str] = set()
        deadline = time.monotonic() + 20
        while allowed != {host.name for host in deployment.hosts}:
            answer = http.get(f"/api/calls/can-call/{callee}", headers={"Authorization": f"Bearer {tokens[0]}"})
            if answer.status_code == 200 and answer.json()["allowed"]:
                allowed.add(deployment.host_of(answer).name)
            assert time.monotonic() < deadline, f"the grant shows only on {sorted(allowed)}: {answer.text}"
    return tokens[0], tokens[1]


@asynccontextmanager
async def on_two_hosts(deployment: Deployment, caller: str, callee: str) -> AsyncIterator[tuple[CallClient, CallClient]]:
    """Calls clients of ``caller`` and ``callee`` through nginx, their sockets held by different hosts."""
    caller_token, callee_token = ready_to_call(deployment, caller, callee)
    async with (
        CallClient(deployment.url, token=caller_token, host_addresses=["127.0.0.1"], tone_hz=ALICE_TONE) as calling,
        CallClient(deployment.url, token=callee_token, host_addresses=["127.0.0.1"], tone_hz=BOBBY_TONE) as called,
    ):
        for _ in range(4):
            if deployment.socket_host(called) is not deployment.socket_host(calling):
                break
            await called.reconnect()  # round-robin hands the next socket to the other host
        assert deployment.socket_host(called) is not deployment.socket_host(calling)
        yield calling, called


async def connected(caller: CallClient, callee: CallClient) -> tuple[Call, Call]:
    """``caller`` calls ``callee``, who answers; both ends once each hears the other."""
    outgoing = await caller.call(callee.username, media="audio")
    assert outgoing.end_reason is None, f"the call ended at once: {outgoing.end_reason}"
    incoming = await asyncio.wait_for(callee.incoming.get(), TIMEOUT)
    await incoming.answer()
    await outgoing.received.wait_for(heard_audio, TIMEOUT)
    await incoming.received.wait_for(heard_audio, TIMEOUT)
    return outgoing, incoming


async def hears_more(call: Call, seconds: float) -> None:
    """Until ``call`` has received ``seconds`` more of the other side's audio."""
    frames = call.received.audio_frames + round(seconds * SECOND_OF_AUDIO)

    def enough(media: ReceivedMedia) -> bool:
        return media.audio_frames >= frames

    await call.received.wait_for(enough, TIMEOUT + seconds)


async def lose_network(client: CallClient) -> None:
    """Cut ``client``'s socket as a lost network does (no close frame), and keep it offline until it reconnects."""
    client.reconnect_on_drop = False
    ws = client._ws  # the client offers no way to lose its network on purpose
    assert ws is not None
    ws.transport.abort()
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)


async def until_held_elsewhere(deployment: Deployment, client: CallClient, left: Host) -> None:
    """Until ``client`` has reconnected, through nginx, to a host other than ``left``."""
    deadline = time.monotonic() + TIMEOUT
    while client._ws is None or deployment.socket_host(client) is left:
        assert time.monotonic() < deadline, f"@{client.username} is still on {left} or nowhere after {TIMEOUT:g} s"
        await asyncio.sleep(0.05)


async def test_a_call_connects_across_two_server_processes(deployment: Deployment) -> None:
    async with on_two_hosts(deployment, "alice", "bobby") as (alice, bobby):
        outgoing, incoming = await connected(alice, bobby)
        assert_tone(incoming.received, ALICE_TONE)
        assert_tone(outgoing.received, BOBBY_TONE)

        await outgoing.hangup()

        assert await incoming.wait_ended(TIMEOUT) == "hangup"


async def test_the_other_hosts_sweep_leaves_a_dropped_caller_the_grace(deployment: Deployment) -> None:
    async with on_two_hosts(deployment, "carol", "dave") as (carol, dave):
        outgoing, incoming = await connected(carol, dave)

        await lose_network(carol)
        # Several sweeps of each host pass while the callee goes on hearing her, peer to peer.
        await hears_more(incoming, seconds=3)
        assert incoming.live

        await carol.reconnect()  # calls.resume
        assert outgoing.live and outgoing.state == "answered"
        await incoming.hangup()
        assert await outgoing.wait_ended(TIMEOUT) == "hangup"


async def test_a_callee_whose_host_stops_resumes_on_the_other_and_the_call_goes_on(deployment: Deployment) -> None:
    async with on_two_hosts(deployment, "erin", "frank") as (erin, frank):
        outgoing, incoming = await connected(erin, frank)
        stopping, socket = deployment.socket_host(frank), frank._ws
        assert socket is not None

        deployment.terminate(stopping)

        await until_held_elsewhere(deployment, frank, stopping)
        assert socket.close_code == CLOSE_SERVICE_RESTART, socket.close_reason
        await asyncio.to_thread(deployment.wait_exited, stopping)  # the media below flows with that host gone
        await hears_more(incoming, seconds=1)
        await hears_more(outgoing, seconds=1)
        assert outgoing.state == incoming.state == "answered"
        # The hang-up reaches the callee's new socket: the call was resumed there, not left bound to the stopped host.
        await outgoing.hangup()
        assert await incoming.wait_ended(TIMEOUT) == "hangup"
        assert incoming.ended_by == "erin"


async def test_the_calls_of_a_killed_host_end_by_the_other_hosts_sweep_after_the_grace(deployment: Deployment) -> None:
    async with on_two_hosts(deployment, "gina", "heidi") as (gina, heidi):
        outgoing, _incoming = await connected(gina, heidi)
        heidi.reconnect_on_drop = False  # her device went down with the host
        lost = deployment.socket_host(heidi)

        await asyncio.to_thread(deployment.kill, lost)

        # Nobody is left to say so: her socket stops counting as open after three heartbeats,
        # then the surviving host's sweep gives her the grace, and ends the call when it runs out.
        assert await outgoing.wait_ended(TIMEOUT + PRESENCE_SECONDS + RECONNECT_GRACE_SECONDS) == "disconnected"
        assert outgoing.ended_by == "heidi"
