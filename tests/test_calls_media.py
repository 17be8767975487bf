"""Calls carry real media: aiortc clients talking through a real `everything serve`, and the echo test.

One server process serves the module, configured so that its own peers
(the echo) offer only 127.0.0.1, as do the clients: media stays on
loopback and no STUN server is asked. ``alice`` holds premium (granted
with the CLI, as an operator would); ``bobby`` is on the free plan and
follows alice, which lets her through his default call settings.

Each side sends a tone of its own pitch and a test picture of its own
size, so that what a side hears and sees proves where it came from.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kernel import ReceivedMedia
from plugins.calls.client import Call, CallClient, Media
from tests.conftest import PASSWORD, serve

LOOPBACK = ["127.0.0.1"]
ALICE_TONE, BOBBY_TONE = 440.0, 660.0
ALICE_PICTURE, BOBBY_PICTURE = (320, 240), (176, 144)
TONE_TOLERANCE_HZ = 5.0
TIMEOUT = 15.0
SECOND_OF_AUDIO = 50  # 20 ms frames


@dataclass
class Deployment:
    url: str
    workdir: Path
    tokens: dict[str, str]


def sign_up_with_token(url: str, username: str) -> str:
    """Sign ``username`` up through the API and mint an API token for them."""
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
        signed = http.post("/api/auth/signup", json={"username": username, "password": PASSWORD})
        assert signed.status_code == 201, signed.text
        minted = http.post(
            "/api/auth/tokens", json={"name": "media test"}, headers={"X-CSRF-Token": signed.headers["X-CSRF-Token"]}
        )
        assert minted.status_code == 201, minted.text
        return minted.json()["token"]


def grant_premium(workdir: Path, username: str) -> None:
    """As an operator does: ``everything grant <user> premium`` in the deployment's folder."""
    subprocess.run(
        [sys.executable, "-m", "kernel.cli", "grant", username, "premium"], cwd=workdir, check=True, capture_output=True
    )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("calls-media")
    (workdir / "everything.toml").write_text('[plugins.calls]\nhost_addresses = ["127.0.0.1"]\n')
    with serve(workdir) as url:
        tokens = {name: sign_up_with_token(url, name) for name in ("alice", "bobby")}
        grant_premium(workdir, "alice")
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
            followed = http.put("/api/users/alice/follow", headers={"Authorization": f"Bearer {tokens['bobby']}"})
            assert followed.status_code < 300, followed.text
            # The server trusts cached plans for a moment (entitlements.refresh_seconds): wait until the grant shows.
            deadline = time.monotonic() + 20
            while True:
                can = http.get("/api/calls/can-call/bobby", headers={"Authorization": f"Bearer {tokens['alice']}"})
                if can.status_code == 200 and can.json()["allowed"]:
                    break
                assert time.monotonic() < deadline, can.text
                time.sleep(0.2)
        yield Deployment(url, workdir, tokens)


@pytest.fixture
async def alice(deployment: Deployment) -> AsyncIterator[CallClient]:
    client = CallClient(
        deployment.url, token=deployment.tokens["alice"], host_addresses=LOOPBACK, tone_hz=ALICE_TONE, video_size=ALICE_PICTURE
    )
    async with client:
        yield client


@pytest.fixture
async def bobby(deployment: Deployment) -> AsyncIterator[CallClient]:
    # Logs in with his password, as a bot given an account would.
    client = CallClient(
        deployment.url, username="bobby", password=PASSWORD, host_addresses=LOOPBACK, tone_hz=BOBBY_TONE, video_size=BOBBY_PICTURE
    )
    async with client:
        yield client


async def connected_call(caller: CallClient, callee: CallClient, media: Media) -> tuple[Call, Call]:
    """``caller`` calls ``callee``, who answers; both ends once their media connection is up."""
    outgoing = await caller.call(callee.username, media=media)
    incoming = await callee_takes(callee, outgoing.call_id)
    await incoming.answer()
    await outgoing.wait_answered(TIMEOUT)
    await outgoing.wait_connected(TIMEOUT)
    await incoming.wait_connected(TIMEOUT)
    return outgoing, incoming


async def callee_takes(callee: CallClient, call_id: str) -> Call:
    incoming = await asyncio.wait_for(callee.incoming.get(), TIMEOUT)
    assert incoming.call_id == call_id
    return incoming


def heard_audio(media: ReceivedMedia) -> bool:
    return media.audio_frames >= SECOND_OF_AUDIO


def saw_video(media: ReceivedMedia) -> bool:
    return media.audio_frames >= SECOND_OF_AUDIO and media.video_frames >= 10


def assert_tone(media: ReceivedMedia, expected: float) -> None:
    frequency = media.dominant_frequency()
    assert frequency is not None and abs(frequency - expected) <= TONE_TOLERANCE_HZ, frequency


async def test_an_audio_call_carries_each_sides_tone_to_the_other(alice: CallClient, bobby: CallClient) -> None:
    outgoing, incoming = await connected_call(alice, bobby, "audio")
    await outgoing.received.wait_for(heard_audio, TIMEOUT)
    await incoming.received.wait_for(heard_audio, TIMEOUT)

    assert outgoing.received.sample_rate == incoming.received.sample_rate == 48000
    assert_tone(outgoing.received, BOBBY_TONE)
    assert_tone(incoming.received, ALICE_TONE)
    assert outgoing.received.video_frames == incoming.received.video_frames == 0


async def test_a_video_call_carries_each_sides_picture_to_the_other(alice: CallClient, bobby: CallClient) -> None:
    outgoing, incoming = await connected_call(alice, bobby, "video")
    await outgoing.received.wait_for(saw_video, TIMEOUT)
    await incoming.received.wait_for(saw_video, TIMEOUT)

    assert outgoing.received.video_size == BOBBY_PICTURE
    assert incoming.received.video_size == ALICE_PICTURE
    assert_tone(outgoing.received, BOBBY_TONE)
    assert_tone(incoming.received, ALICE_TONE)


async def test_hanging_up_ends_the_call_and_its_media_on_both_sides(alice: CallClient, bobby: CallClient) -> None:
    outgoing, incoming = await connected_call(alice, bobby, "audio")
    await incoming.received.wait_for(heard_audio, TIMEOUT)

    await outgoing.hangup()

    assert await incoming.wait_ended(TIMEOUT) == "hangup"
    assert incoming.ended_by == "alice"
    assert outgoing.end_reason == "hangup"
    assert incoming.pc is not None and incoming.pc.connectionState == "closed"
    assert outgoing.pc is not None and outgoing.pc.connectionState == "closed"
    assert not alice.calls and not bobby.calls


async def test_a_call_outlives_the_callers_reconnect(alice: CallClient, bobby: CallClient) -> None:
    outgoing, incoming = await connected_call(alice, bobby, "audio")
    await incoming.received.wait_for(heard_audio, TIMEOUT)

    await alice.reconnect()  # a new socket, which resumes the call

    frames = incoming.received.audio_frames
    await incoming.received.wait_for(lambda media: media.audio_frames >= frames + SECOND_OF_AUDIO, TIMEOUT)
    assert outgoing.state == incoming.state == "answered"
    await outgoing.hangup()
    assert await incoming.wait_ended(TIMEOUT) == "hangup"


async def test_the_echo_sends_back_the_callers_own_sound_and_picture(bobby: CallClient) -> None:
    # Free for everyone: bobby holds no plan.
    call = await bobby.call("echo", media="video")
    await call.wait_answered(TIMEOUT)
    await call.wait_connected(TIMEOUT)
    await call.received.wait_for(saw_video, TIMEOUT)

    assert_tone(call.received, BOBBY_TONE)
    assert call.received.video_size == BOBBY_PICTURE
    await call.hangup()
