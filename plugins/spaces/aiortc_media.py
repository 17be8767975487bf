"""The embedded Spaces media backend: aiortc peers and one mixer per Space in the server process.

Each participant connects one peer to the server. aiortc decodes each
incoming microphone once (in its receiver); a reader task per participant
keeps the last few 20 ms blocks. Every 20 ms the Space's mixer task takes
one block per speaker in the mix (on stage and not muted), sums them
(int16, clipped), and encodes:

* the mix once, as Opus; the very same ``av.Packet`` objects go to every
  listener's outgoing track, and aiortc's sender only packetises them
  (``RTCRtpSender`` passes packets, unlike frames, to the codec's ``pack``);
* for each speaker in the mix, the mix without their own voice (at most
  one encoder per speaker, 13 at most on a stage).

Every stream stamps its packets with the Space's own clock (the tick's
pts in 1/48000), so a participant who moves between the shared mix and a
mix-minus stream (muted, unmuted, invited on stage) keeps one continuous
RTP timestamp line. Mixing and encoding run in a worker thread, one tick
at a time per Space, so that the event loop is never held up by Opus.

The speaking set (RMS over the last 300 ms above a threshold, held through
short pauses) is reported through ``on_speaking`` whenever it changes,
from a separate task so that a slow callback never delays the sound.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kernel import host_addresses as ice_host_addresses
from kernel import rtc_configuration
from plugins.spaces.media import RecordedCallback, SpeakingCallback
from plugins.spaces.mixer import PTIME, SAMPLES, Mixer, to_mono_s16

log = logging.getLogger("plugins.spaces.aiortc_media")

MAX_BUFFERED_BLOCKS = 10  # 200 ms of a speaker's sound waiting to be mixed; older blocks are dropped
OUT_QUEUE_PACKETS = 10  # 200 ms of packets waiting for a slow sender; older ones are dropped
MAX_LATE_TICKS = 10  # a mixer more than 200 ms behind skips ahead instead of catching up


class SpaceTrack(MediaStreamTrack):
    """What the server sends a participant: already-encoded Opus packets, handed over by the mixer."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[av.Packet] = asyncio.Queue()
        self.sent: collections.deque[av.Packet] = collections.deque(maxlen=100)  # the last packets, for tests

    def put(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if self._queue.qsize() >= OUT_QUEUE_PACKETS:
                self._queue.get_nowait()
            self._queue.put_nowait(packet)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        self.sent.append(packet)
        return packet


@dataclass
class _Participant:
    user_id: int
    pc: RTCPeerConnection
    track: SpaceTrack
    can_speak: bool
    muted: bool = False
    blocks: collections.deque[np.ndarray] = field(default_factory=lambda: collections.deque(maxlen=MAX_BUFFERED_BLOCKS))
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    reader: asyncio.Task[None] | None = None
    closing: bool = False
    primed: bool = False

    @property
    def in_mix(self) -> bool:
        return self.can_speak and not self.muted

    def add_samples(self, samples: np.ndarray) -> None:
        """Cut incoming sound (any frame size) into 20 ms blocks."""
        data = np.concatenate([self.pending, samples]) if len(self.pending) else samples
        whole = len(data) // SAMPLES * SAMPLES
        for start in range(0, whole, SAMPLES):
            self.blocks.append(data[start : start + SAMPLES])
        self.pending = data[whole:]

    def take_block(self) -> np.ndarray | None:
        """The next 20 ms block, or None (silence) while the buffer refills: after running dry it waits for
        two blocks, so that sound arriving a little unevenly does not click at every gap."""
        if not self.primed and len(self.blocks) < 2:
            return None
        if not self.blocks:
            self.primed = False
            return None
        self.primed = True
        return self.blocks.popleft()


@dataclass
class _Space:
    space_id: int
    mixer: Mixer = field(default_factory=Mixer)
    participants: dict[int, _Participant] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    notifier: asyncio.Task[None] | None = None
    speaking: list[int] = field(default_factory=list)
    reported: list[int] = field(default_factory=list)
    speaking_changed: asyncio.Event = field(default_factory=asyncio.Event)
    tick_seconds: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=500))
    late_ticks: int = 0


class AiortcMedia:
    """:class:`plugins.spaces.media.SpacesMedia` with aiortc peers and a mixer per Space in this process."""

    def __init__(
        self,
        on_speaking: SpeakingCallback | None = None,
        host_addresses: list[str] | None = None,
        on_recorded: RecordedCallback | None = None,
    ) -> None:
        self.on_speaking = on_speaking
        self.on_recorded = on_recorded
        self.host_addresses = host_addresses
        self._spaces: dict[int, _Space] = {}

    # -- the interface ---------------------------------------------------------------------

    async def join(self, space_id: int, user_id: int, offer_sdp: str, *, can_speak: bool) -> str:
        # Joining again (a reload, a microphone once on stage) replaces the old peer, but only once the new
        # offer is answered: a refused offer leaves the old peer as it was.
        pc = RTCPeerConnection(rtc_configuration([]))  # no STUN: our candidates are our own addresses
        track = SpaceTrack()
        participant = _Participant(user_id, pc, track, can_speak)
        try:
            try:
                await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            except Exception as error:
                raise ValueError(f"not an offer that can be answered: {error}") from error
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if not audio:
                raise ValueError("the offer has no audio")
            transceiver = audio[0]
            transceiver.sender.replaceTrack(track)
            transceiver.direction = "sendrecv"  # answered as sendonly when the offer only receives
            answer = await pc.createAnswer()
            with ice_host_addresses(self.host_addresses):
                await pc.setLocalDescription(answer)
        except Exception as error:
            await pc.close()
            if isinstance(error, ValueError):
                raise
            raise ValueError(f"the offer cannot be answered: {error}") from error

        space = self._space(space_id)
        old = space.participants.get(user_id)
        space.participants[user_id] = participant
        if old is not None:
            await self._close_participant(old)
        # aiortc keeps the offer's direction from our side: recvonly/sendrecv means the participant sends.
        incoming = transceiver.receiver.track if transceiver._offerDirection in ("sendrecv", "recvonly") else None
        if incoming is not None:
            participant.reader = asyncio.create_task(self._read(participant, incoming))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and not participant.closing:
                log.info("spaces: space %s user %s peer %s", space_id, user_id, pc.connectionState)
                current = self._spaces.get(space_id)
                if current is not None and current.participants.get(user_id) is participant:
                    await self.leave(space_id, user_id)

        self._start_mixer(space)
        return pc.localDescription.sdp

    async def set_speaker(self, space_id: int, user_id: int, can_speak: bool) -> None:
        participant = self._participant(space_id, user_id)
        if participant is not None:
            participant.can_speak = can_speak
            participant.blocks.clear()
            participant.primed = False

    async def set_muted(self, space_id: int, user_id: int, muted: bool) -> None:
        participant = self._participant(space_id, user_id)
        if participant is not None:
            participant.muted = muted
            participant.blocks.clear()
            participant.primed = False

    async def leave(self, space_id: int, user_id: int) -> None:
        space = self._spaces.get(space_id)
        if space is None:
            return
        participant = space.participants.pop(user_id, None)
        if participant is not None:
            await self._close_participant(participant)
        await self._idle(space)

    async def start_recording(self, space_id: int, path: Path) -> None:
        space = self._space(space_id)
        try:
            await asyncio.to_thread(space.mixer.start_recording, Path(path))
        finally:
            self._report_recorded(space)  # a take running until now is finished
        self._start_mixer(space)

    async def stop_recording(self, space_id: int) -> None:
        space = self._spaces.get(space_id)
        if space is None:
            return
        try:
            await asyncio.to_thread(space.mixer.stop_recording)
        finally:
            self._report_recorded(space)
        await self._idle(space)

    async def end(self, space_id: int) -> None:
        space = self._spaces.pop(space_id, None)
        if space is None:
            return
        for task in (space.task, space.notifier):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (space.task, space.notifier) if t is not None), return_exceptions=True)
        try:
            await asyncio.to_thread(space.mixer.stop_recording)  # waits for a tick still running in its thread
        finally:
            self._report_recorded(space)
        participants, space.participants = list(space.participants.values()), {}
        await asyncio.gather(*(self._close_participant(p) for p in participants), return_exceptions=True)

    async def close(self) -> None:
        await asyncio.gather(*(self.end(space_id) for space_id in list(self._spaces)), return_exceptions=True)

    # -- statistics (tests, the admin page) -------------------------------------------------

    def stats(self, space_id: int) -> dict[str, float | int]:
        """Ticks run, mixes encoded (once per tick), mix-minus encodes, and the mixer's time per tick."""
        space = self._spaces.get(space_id)
        if space is None:
            return {}
        durations = list(space.tick_seconds)
        return {
            "participants": len(space.participants),
            "ticks": space.mixer.ticks,
            "mix_encodes": space.mixer.mix_encoder.encoded,
            "minus_encoders": len(space.mixer.minus_encoders),
            "late_ticks": space.late_ticks,
            "tick_ms_mean": 1000 * sum(durations) / len(durations) if durations else 0.0,
            "tick_ms_max": 1000 * max(durations) if durations else 0.0,
        }

    # -- inside -------------------------------------------------------------------------------

    def _report_recorded(self, space: _Space) -> None:
        """Tell ``on_recorded`` of each take the Space's mixer finished."""
        for path in space.mixer.take_finished():
            if self.on_recorded is None:
                continue
            try:
                self.on_recorded(space.space_id, path)
            except Exception:
                log.exception("spaces: on_recorded for %s failed", path)

    def _space(self, space_id: int) -> _Space:
        space = self._spaces.get(space_id)
        if space is None:
            space = self._spaces[space_id] = _Space(space_id)
        return space

    def _participant(self, space_id: int, user_id: int) -> _Participant | None:
        space = self._spaces.get(space_id)
        return space.participants.get(user_id) if space is not None else None

    async def _idle(self, space: _Space) -> None:
        """Free a Space nobody is in and nothing records: its mixer need not tick (a later join starts a new one)."""
        if space.participants or space.mixer.recorder is not None or self._spaces.get(space.space_id) is not space:
            return
        del self._spaces[space.space_id]
        tasks = [t for t in (space.task, space.notifier) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if space.reported and self.on_speaking is not None:
            try:
                await self.on_speaking(space.space_id, [])
            except Exception:
                log.exception("spaces: on_speaking for space %s failed", space.space_id)

    def _start_mixer(self, space: _Space) -> None:
        if space.task is None or space.task.done():
            space.task = asyncio.create_task(self._run(space), name=f"spaces-mixer-{space.space_id}")
        if space.notifier is None or space.notifier.done():
            space.notifier = asyncio.create_task(self._notify(space), name=f"spaces-speaking-{space.space_id}")

    async def _close_participant(self, participant: _Participant) -> None:
        participant.closing = True
        participant.track.stop()
        if participant.reader is not None:
            participant.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await participant.reader
        await participant.pc.close()

    async def _read(self, participant: _Participant, track: MediaStreamTrack) -> None:
        """Drain the participant's microphone (decoded once by aiortc); keep blocks only while they are in the mix."""
        resampler = None
        with contextlib.suppress(MediaStreamError):
            while True:
                # aiortc types recv() for any track, video and packets included; a remote audio track gives AudioFrames.
                frame = cast(av.AudioFrame, await track.recv())
                if not participant.in_mix:
                    continue  # read anyway, or aiortc's queue of decoded frames would grow
                if frame.format.name != "s16" or frame.sample_rate != 48_000:
                    resampler = resampler or av.AudioResampler(format="s16", layout="mono", rate=48_000)
                participant.add_samples(to_mono_s16(frame, resampler))

    async def _run(self, space: _Space) -> None:
        """The Space's clock: one tick every 20 ms, on an absolute schedule."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            blocks: dict[int, np.ndarray] = {}
            for user_id, participant in space.participants.items():
                if participant.in_mix:
                    block = participant.take_block()
                    blocks[user_id] = block if block is not None else np.zeros(SAMPLES, dtype=np.int16)
            started = time.perf_counter()
            try:
                mix_packets, minus, speaking = await asyncio.to_thread(space.mixer.tick, blocks)
            except Exception:  # never seen; a tick lost is 20 ms of silence, a dead mixer a silent Space
                log.exception("spaces: mixing a tick of space %s failed", space.space_id)
                mix_packets, minus, speaking = [], {}, set(space.speaking)
            self._report_recorded(space)  # a failed write ends the take in the tick
            space.tick_seconds.append(time.perf_counter() - started)
            for user_id, participant in space.participants.items():
                participant.track.put(minus.get(user_id, mix_packets))
            ordered = sorted(speaking)
            if ordered != space.speaking:
                space.speaking = ordered
                space.speaking_changed.set()
            next_at += PTIME
            delay = next_at - loop.time()
            if delay < -MAX_LATE_TICKS * PTIME:
                space.late_ticks += 1
                next_at = loop.time()
            elif delay > 0:
                await asyncio.sleep(delay)

    async def _notify(self, space: _Space) -> None:
        """Tell ``on_speaking`` about each change of the speaking set (coalescing changes that come faster)."""
        while True:
            await space.speaking_changed.wait()
            space.speaking_changed.clear()
            current = list(space.speaking)
            if current == space.reported:
                continue
            space.reported = current
            if self.on_speaking is None:
                continue
            try:
                await self.on_speaking(space.space_id, current)
            except Exception:
                log.exception("spaces: on_speaking for space %s failed", space.space_id)
