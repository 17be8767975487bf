"""The Spaces media engine carries real sound: aiortc peers in this process talking to :class:`AiortcMedia`.

Two speakers send tones of their own pitch (440 Hz and 660 Hz) and two
listeners only receive. The spectrum of what each side hears tells whose
voice is in its mix; the engine's counters tell how often it encoded.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kernel import ToneTrack, host_addresses, rtc_configuration
from plugins.spaces.aiortc_media import AiortcMedia

LOOPBACK = ["127.0.0.1"]
SPACE = 7
ALICE, BOBBY, CAROL, DAVID = 1, 2, 3, 4  # alice and bobby speak, carol and david listen
ALICE_TONE, BOBBY_TONE = 440.0, 660.0
TIMEOUT = 15.0
RATE = 48_000


@dataclass
class Heard:
    """The last second of sound a client received, mono float."""

    frames: int = 0
    sound: collections.deque[np.ndarray] = field(default_factory=lambda: collections.deque(maxlen=50))

    def add(self, frame: av.AudioFrame) -> None:
        samples = frame.to_ndarray()
        channels = len(frame.layout.channels)
        mono = samples[0] if frame.format.is_planar else samples[0, ::channels]
        self.sound.append(mono.astype(np.float32))
        self.frames += 1

    def clear(self) -> None:
        self.sound.clear()

    def strength(self, frequency: float) -> float:
        """The spectrum's magnitude around ``frequency``, relative to the whole spectrum's peak (1.0 = the loudest)."""
        sound = np.concatenate(list(self.sound))
        spectrum = np.abs(np.fft.rfft(sound * np.hanning(len(sound))))
        spectrum[:5] = 0
        if not spectrum.max():
            return 0.0
        bin_hz = RATE / len(sound)
        low, high = int((frequency - 10) / bin_hz), int((frequency + 10) / bin_hz) + 1
        return float(spectrum[low:high].max() / spectrum.max())

    def rms(self) -> float:
        sound = np.concatenate(list(self.sound))
        return float(np.sqrt(np.mean(sound * sound)))


@dataclass
class Client:
    user_id: int
    pc: RTCPeerConnection
    heard: Heard
    tone: ToneTrack | None
    task: asyncio.Task[None] | None = None

    async def wait_frames(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while self.heard.frames < count:
                await asyncio.sleep(0.05)

    async def hear_a_fresh_second(self) -> None:
        self.heard.clear()
        start = self.heard.frames
        await self.wait_frames(start + 50)

    async def hear_once_settled(self, settled: Callable[[Heard], bool]) -> None:
        """Listen a second at a time until ``settled`` holds for what was heard.

        Sound mixed before a change is still in flight (and in the jitter
        buffer) after it; on a loaded machine that takes longer than any
        fixed pause, so the test listens until the change has come through.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TIMEOUT):
                while True:
                    await self.hear_a_fresh_second()
                    if settled(self.heard):
                        return


async def consume(track: MediaStreamTrack, heard: Heard) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            heard.add(await track.recv())


async def connect(
    media: AiortcMedia, user_id: int, tone: float | None, *, can_speak: bool, space_id: int = SPACE, amplitude: float = 0.3
) -> Client:
    pc = RTCPeerConnection(rtc_configuration([]))
    heard = Heard()
    track = ToneTrack(tone, amplitude=amplitude) if tone is not None else None
    client = Client(user_id, pc, heard, track)

    @pc.on("track")
    def on_track(remote: MediaStreamTrack) -> None:
        client.task = asyncio.create_task(consume(remote, heard))

    if track is not None:
        pc.addTrack(track)
    else:
        pc.addTransceiver("audio", direction="recvonly")
    with host_addresses(LOOPBACK):
        await pc.setLocalDescription(await pc.createOffer())
    answer = await media.join(space_id, user_id, pc.localDescription.sdp, can_speak=can_speak)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return client


@dataclass
class Room:
    media: AiortcMedia
    speaking: list[list[int]]
    alice: Client
    bobby: Client
    carol: Client
    david: Client


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    speaking: list[list[int]] = []

    async def on_speaking(space_id: int, user_ids: list[int]) -> None:
        assert space_id == SPACE
        speaking.append(user_ids)

    media = AiortcMedia(on_speaking, host_addresses=LOOPBACK)
    clients = [
        await connect(media, ALICE, ALICE_TONE, can_speak=True),
        await connect(media, BOBBY, BOBBY_TONE, can_speak=True),
        await connect(media, CAROL, None, can_speak=False),
        await connect(media, DAVID, None, can_speak=False),
    ]
    try:
        for client in clients:
            await client.wait_frames(25)
        yield Room(media, speaking, *clients)
    finally:
        await media.close()
        for client in clients:
            await client.pc.close()
            if client.task is not None:
                client.task.cancel()


async def test_every_listener_hears_both_speakers(room: Room) -> None:
    for listener in (room.carol, room.david):
        await listener.hear_a_fresh_second()
        assert listener.heard.strength(ALICE_TONE) > 0.5
        assert listener.heard.strength(BOBBY_TONE) > 0.5


async def test_a_speaker_hears_the_others_but_not_themself(room: Room) -> None:
    await room.alice.hear_a_fresh_second()
    await room.bobby.hear_a_fresh_second()
    assert room.alice.heard.strength(BOBBY_TONE) > 0.5
    assert room.alice.heard.strength(ALICE_TONE) < 0.1
    assert room.bobby.heard.strength(ALICE_TONE) > 0.5
    assert room.bobby.heard.strength(BOBBY_TONE) < 0.1


async def test_a_muted_speaker_leaves_the_mix(room: Room) -> None:
    await room.media.set_muted(SPACE, ALICE, True)
    await room.carol.hear_once_settled(lambda heard: heard.strength(ALICE_TONE) < 0.1)
    assert room.carol.heard.strength(BOBBY_TONE) > 0.5
    assert room.carol.heard.strength(ALICE_TONE) < 0.1
    # Muted, alice hears the whole mix (which is bobby alone).
    await room.alice.hear_a_fresh_second()
    assert room.alice.heard.strength(BOBBY_TONE) > 0.5

    await room.media.set_muted(SPACE, ALICE, False)
    await room.carol.hear_once_settled(lambda heard: heard.strength(ALICE_TONE) > 0.5)
    assert room.carol.heard.strength(ALICE_TONE) > 0.5


async def test_a_speaker_sent_back_to_the_audience_leaves_the_mix(room: Room) -> None:
    await room.media.set_speaker(SPACE, BOBBY, False)
    await room.david.hear_once_settled(lambda heard: heard.strength(BOBBY_TONE) < 0.1)
    assert room.david.heard.strength(ALICE_TONE) > 0.5
    assert room.david.heard.strength(BOBBY_TONE) < 0.1


async def test_the_speaking_callback_names_both_speakers_and_follows_mute(room: Room) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not room.speaking or room.speaking[-1] != [ALICE, BOBBY]:
            await asyncio.sleep(0.05)
    await room.media.set_muted(SPACE, BOBBY, True)
    async with asyncio.timeout(TIMEOUT):
        while room.speaking[-1] != [ALICE]:
            await asyncio.sleep(0.05)
    # Debounced: one report per change, not one per tick.
    assert len(room.speaking) < 10, room.speaking


async def test_a_quiet_speaker_is_not_speaking(room: Room) -> None:
    erin = await connect(room.media, 5, 880.0, can_speak=True, amplitude=0.0005)  # a microphone picking up a quiet room
    try:
        await erin.wait_frames(50)
        await asyncio.sleep(1.0)
        assert 5 in room.media._spaces[SPACE].mixer.levels  # in the mix, and measured
        assert room.speaking[-1] == [ALICE, BOBBY]
        assert all(5 not in ids for ids in room.speaking)
    finally:
        await room.media.leave(SPACE, 5)
        await erin.pc.close()


async def test_the_mix_is_encoded_once_per_tick_and_listeners_share_its_packets(room: Room) -> None:
    await room.carol.hear_a_fresh_second()
    stats = room.media.stats(SPACE)
    assert stats["mix_encodes"] == stats["ticks"] > 50
    assert stats["minus_encoders"] == 2  # one per speaker in the mix
    space = room.media._spaces[SPACE]
    carol, david = space.participants[CAROL].track.sent, space.participants[DAVID].track.sent
    by_pts = {packet.pts: packet for packet in carol}
    shared = [packet for packet in david if packet.pts in by_pts]
    assert len(shared) > 20
    assert all(by_pts[packet.pts] is packet for packet in shared)
    alice = {packet.pts: packet for packet in space.participants[ALICE].track.sent}
    assert not any(alice.get(packet.pts) is packet for packet in shared)  # alice gets her own mix-minus


async def test_a_recording_holds_the_mix(room: Room, tmp_path: Path) -> None:
    path = tmp_path / "space.ogg"
    await room.media.start_recording(SPACE, path)
    await asyncio.sleep(2.0)
    await room.media.stop_recording(SPACE)

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        samples = [frame.to_ndarray() for frame in container.decode(stream)]
    mono = np.concatenate([s[0] for s in samples]).astype(np.float32)
    seconds = len(mono) / RATE
    assert 1.7 < seconds < 2.3, seconds
    heard = Heard()
    heard.sound.append(mono[-RATE:])
    assert heard.strength(ALICE_TONE) > 0.5 and heard.strength(BOBBY_TONE) > 0.5


async def test_ending_a_space_finishes_its_recording_and_closes_every_peer(room: Room, tmp_path: Path) -> None:
    path = tmp_path / "ended.ogg"
    await room.media.start_recording(SPACE, path)
    await asyncio.sleep(0.5)
    await room.media.end(SPACE)
    assert room.media.stats(SPACE) == {}
    with av.open(str(path)) as container:
        assert sum(frame.samples for frame in container.decode(audio=0)) > RATE // 4
    async with asyncio.timeout(TIMEOUT):
        while room.carol.pc.connectionState != "closed" and room.carol.pc.connectionState != "failed":
            await asyncio.sleep(0.1)


async def test_leaving_drops_the_participant(room: Room) -> None:
    await room.media.leave(SPACE, ALICE)
    assert room.media.stats(SPACE)["participants"] == 3
    await room.carol.hear_once_settled(lambda heard: heard.strength(ALICE_TONE) < 0.1)
    assert room.carol.heard.strength(ALICE_TONE) < 0.1
    assert room.carol.heard.strength(BOBBY_TONE) > 0.5


@pytest.mark.parametrize("sdp", ["", "not sdp at all", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"])
async def test_an_offer_that_cannot_be_answered_is_refused(sdp: str) -> None:
    media = AiortcMedia(None, host_addresses=LOOPBACK)
    try:
        with pytest.raises(ValueError):
            await media.join(SPACE, ALICE, sdp, can_speak=True)
        assert media.stats(SPACE) == {}
    finally:
        await media.close()


async def test_joining_again_replaces_the_old_peer(room: Room) -> None:
    old = room.alice
    again = await connect(room.media, ALICE, ALICE_TONE, can_speak=True)
    try:
        assert room.media.stats(SPACE)["participants"] == 4
        await again.wait_frames(25)
        await again.hear_once_settled(lambda heard: heard.strength(ALICE_TONE) < 0.1)
        assert again.heard.strength(BOBBY_TONE) > 0.5
        assert again.heard.strength(ALICE_TONE) < 0.1
        async with asyncio.timeout(TIMEOUT):
            while old.pc.connectionState not in ("closed", "failed"):
                await asyncio.sleep(0.1)
    finally:
        await again.pc.close()


async def test_a_space_everyone_left_stops_its_mixer() -> None:
    speaking: list[list[int]] = []

    async def on_speaking(space_id: int, user_ids: list[int]) -> None:
        speaking.append(user_ids)

    media = AiortcMedia(on_speaking, host_addresses=LOOPBACK)
    alice = await connect(media, ALICE, ALICE_TONE, can_speak=True, space_id=9)
    try:
        async with asyncio.timeout(TIMEOUT):
            while speaking[-1:] != [[ALICE]]:
                await asyncio.sleep(0.05)
        task = media._spaces[9].task
        await media.leave(9, ALICE)
        assert media.stats(9) == {}
        assert task is not None and task.done()
        assert speaking[-1] == []  # nobody speaks in an empty Space
    finally:
        await media.close()
        await alice.pc.close()
