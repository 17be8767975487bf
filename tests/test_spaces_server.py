"""Spaces through a real server process: `everything serve` carries the sound between aiortc clients.

Alice hosts and speaks at 440 Hz; Bobby is invited on stage and speaks at
660 Hz; three more people listen. The spectrum of what each one hears
tells whose voice is in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from kernel import ReceivedMedia
from plugins.spaces.client import SpaceClient, SpaceError
from tests.conftest import serve
from tests.test_calls_media import grant_premium, sign_up_with_token

ALICE_TONE, BOBBY_TONE = 440.0, 660.0
LISTENERS = ("carol", "david", "erin")
TIMEOUT = 20.0
HEARD = 0.3  # a tone at least this strong, relative to the loudest, is in the mix
ABSENT = 0.1  # weaker than this, it is not


@dataclass
class Deployment:
    url: str
    workdir: Path
    tokens: dict[str, str]

    def client(self, username: str) -> SpaceClient:
        return SpaceClient(self.url, token=self.tokens[username], host_addresses=["127.0.0.1"])


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("spaces-server")
    (workdir / "everything.toml").write_text('[plugins.spaces]\nhost_addresses = ["127.0.0.1"]\n')
    with serve(workdir) as url:
        tokens = {name: sign_up_with_token(url, name) for name in ("alice", "bobby", *LISTENERS)}
        grant_premium(workdir, "alice")
        yield Deployment(url, workdir, tokens)


@pytest.fixture
async def clients(deployment: Deployment) -> AsyncIterator[dict[str, SpaceClient]]:
    opened = {name: await deployment.client(name).connect() for name in deployment.tokens}
    try:
        yield opened
    finally:
        await asyncio.gather(*(client.close() for client in opened.values()), return_exceptions=True)


def hears(*tones: float) -> object:
    def condition(media: ReceivedMedia) -> bool:
        return media.audio_frames > 50 and all(media.strength(tone) > HEARD for tone in tones)

    return condition


async def live_space_with_two_speakers(clients: dict[str, SpaceClient]) -> int:
    """Alice hosts and speaks; Bobby joins as a listener, is invited and joins again with his microphone."""
    alice, bobby = clients["alice"], clients["bobby"]
    space = await alice.create("Two tones")
    await alice.join(space["id"], speak=True, tone_hz=ALICE_TONE)
    await alice.request({"type": "spaces.mute", "muted": False})
    await bobby.join(space["id"])
    await alice.request({"type": "spaces.invite", "user": "bobby"})
    await bobby.wait_for(lambda client: client.role_of("bobby") == "speaker")
    rejoined = await bobby.join(space["id"], speak=True, tone_hz=BOBBY_TONE)
    assert rejoined["role"] == "speaker"
    await bobby.request({"type": "spaces.mute", "muted": False})
    for name in LISTENERS:
        await clients[name].join(space["id"])
    return int(space["id"])


async def test_every_listener_hears_both_speakers(clients: dict[str, SpaceClient]) -> None:
    await live_space_with_two_speakers(clients)
    for name in LISTENERS:
        await clients[name].received.wait_for(hears(ALICE_TONE, BOBBY_TONE), TIMEOUT)


async def test_a_speaker_hears_the_other_speaker_but_not_themselves(clients: dict[str, SpaceClient]) -> None:
    await live_space_with_two_speakers(clients)
    alice, bobby = clients["alice"], clients["bobby"]
    await alice.received.wait_for(hears(BOBBY_TONE), TIMEOUT)
    await bobby.received.wait_for(hears(ALICE_TONE), TIMEOUT)
    await asyncio.sleep(1.0)  # a whole second of sound from after both were in the mix
    assert alice.received.strength(ALICE_TONE) < ABSENT
    assert bobby.received.strength(BOBBY_TONE) < ABSENT


async def test_everyone_is_told_who_is_speaking(clients: dict[str, SpaceClient]) -> None:
    await live_space_with_two_speakers(clients)

    def told_both(client: SpaceClient) -> bool:
        return any(
            event["type"] == "spaces.speaking" and {"alice", "bobby"} <= set(event["users"]) for event in client.events
        )

    for client in clients.values():
        await client.wait_for(told_both, TIMEOUT)


async def test_a_listener_who_only_receives_is_not_heard_before_joining_again_to_speak(clients: dict[str, SpaceClient]) -> None:
    alice, bobby, carol = clients["alice"], clients["bobby"], clients["carol"]
    space = await alice.create("Invited")
    await alice.join(space["id"], speak=True, tone_hz=ALICE_TONE)
    await bobby.join(space["id"])
    await carol.join(space["id"])
    await alice.request({"type": "spaces.invite", "user": "bobby"})
    await bobby.request({"type": "spaces.mute", "muted": False})
    await carol.received.wait_for(lambda media: media.audio_frames > 60, TIMEOUT)
    assert carol.received.strength(BOBBY_TONE) < ABSENT

    await bobby.join(space["id"], speak=True, tone_hz=BOBBY_TONE)
    await carol.received.wait_for(hears(BOBBY_TONE), TIMEOUT)
    assert carol.role_of("bobby") == "speaker"


async def test_a_recording_is_playable_from_the_space_once_it_ends(clients: dict[str, SpaceClient], tmp_path: Path) -> None:
    alice, carol = clients["alice"], clients["carol"]
    space = await alice.create("Recorded")
    await alice.join(space["id"], speak=True, tone_hz=ALICE_TONE)
    await alice.request({"type": "spaces.mute", "muted": False})
    await carol.join(space["id"])
    await alice.request({"type": "spaces.record", "on": True})
    await carol.wait_for(lambda client: bool(client.space and client.space["recording"]))
    await asyncio.sleep(2.0)
    await alice.request({"type": "spaces.record", "on": False})
    # Published in the background once the recorder finishes it; those in the Space are told.
    await carol.wait_for(lambda client: bool(client.space and client.space["recordings"]), TIMEOUT)
    await alice.api("POST", f"/api/spaces/{space['id']}/end")

    ended = await carol.api("GET", f"/api/spaces/{space['id']}")
    assert ended["status"] == "ended" and ended["recording"] is False
    [take] = ended["recordings"]
    assert take["duration_seconds"] is not None and take["duration_seconds"] > 0
    download = await carol._http.get(take["url"])  # type: ignore[union-attr]
    assert download.status_code == 200 and download.headers["content-type"] == "audio/ogg"
    path = tmp_path / "take.ogg"
    path.write_bytes(download.content)
    with av.open(str(path)) as container:
        sound = np.concatenate([frame.to_ndarray()[0] for frame in container.decode(audio=0)]).astype(np.float32)
    spectrum = np.abs(np.fft.rfft(sound * np.hanning(len(sound))))
    assert abs(np.argmax(spectrum) * 48_000 / len(sound) - ALICE_TONE) < 10

    ranged = await carol._http.get(take["url"], headers={"Range": "bytes=0-99"})  # type: ignore[union-attr]
    assert ranged.status_code == 206 and len(ranged.content) == 100


async def test_a_recording_that_does_not_exist_is_not_found(clients: dict[str, SpaceClient]) -> None:
    alice = clients["alice"]
    space = await alice.create("Nothing recorded")
    for name in ("20260101T000000.ogg", "x.ogg", "20260101T000000.ogg.part"):
        with pytest.raises(SpaceError) as refused:
            await alice.api("GET", f"/api/spaces/{space['id']}/recordings/{name}")
        assert refused.value.code == "unknown_recording"


def test_recordings_need_a_signed_in_user(deployment: Deployment) -> None:
    answer = httpx.get(f"{deployment.url}/api/spaces/1/recordings/20260101T000000.ogg", trust_env=False)
    assert answer.status_code == 401
