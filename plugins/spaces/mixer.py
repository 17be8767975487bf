"""The arithmetic of a Space's sound: mixing, levels, who is speaking, and Opus encoding.

Nothing here knows about peers or the event loop: :class:`Mixer` takes one
20 ms block of samples per speaker and returns the encoded mixes, which is
what :mod:`plugins.spaces.aiortc_media` runs each tick (in a worker thread,
so that encoding never holds up the event loop).
"""

from __future__ import annotations

import collections
import fractions
import logging
import threading
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 48_000
PTIME = 0.020
SAMPLES = int(SAMPLE_RATE * PTIME)  # 960 samples a tick
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)

log = logging.getLogger("plugins.spaces.mixer")
BIT_RATE = 32_000

LEVEL_WINDOW_TICKS = 15  # 300 ms of level history
SPEAKING_RMS = 300.0  # int16 RMS over the window (about -41 dBFS)
SPEAKING_HOLD_TICKS = 25  # a speaker stays "speaking" through 500 ms of quiet


def to_mono_s16(frame: av.AudioFrame, resampler: av.AudioResampler | None = None) -> np.ndarray:
    """A decoded frame as mono int16 samples at 48 kHz (aiortc decodes Opus to packed stereo s16)."""
    if frame.format.name != "s16" or frame.sample_rate != SAMPLE_RATE:
        if resampler is None:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        return np.concatenate([to_mono_s16(f) for f in resampler.resample(frame)] or [np.zeros(0, np.int16)])
    channels = len(frame.layout.channels)
    samples = frame.to_ndarray()
    if channels == 1:
        return samples.reshape(-1).astype(np.int16, copy=False)
    if frame.format.is_planar:
        return samples.mean(axis=0).astype(np.int16)
    return samples.reshape(-1, channels).mean(axis=1).astype(np.int16)


class OpusEncoder:
    """One Opus stream: 20 ms mono frames in, ``av.Packet`` out with pts in 1/48000 on the Space's clock."""

    def __init__(self) -> None:
        self.codec = av.CodecContext.create("libopus", "w")
        self.codec.sample_rate = SAMPLE_RATE
        self.codec.format = "s16"
        self.codec.layout = "mono"
        self.codec.bit_rate = BIT_RATE
        self.codec.time_base = TIME_BASE
        self.codec.open()
        self.encoded = 0  # frames encoded, for tests and statistics

    @property
    def extradata(self) -> bytes | None:
        return self.codec.extradata

    def encode(self, samples: np.ndarray, pts: int) -> list[av.Packet]:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = pts
        frame.time_base = TIME_BASE
        self.encoded += 1
        packets = self.codec.encode(frame)
        for packet in packets:
            # libopus reports its look-ahead as a negative first pts; every stream of a Space
            # stamps its packets with the tick's own pts instead, so that a participant moving
            # between the shared mix and a mix-minus stream keeps one continuous RTP clock.
            packet.pts = pts
            packet.dts = pts
            packet.time_base = TIME_BASE
        return packets


class Recorder:
    """An Ogg/Opus file fed the packets of the Space's mix (copied: the originals are shared with the listeners).

    It is written as ``<path>.part`` and takes its name when finished, so a file named ``path``
    is always whole (a crash leaves only a ``.part`` behind).
    """

    def __init__(self, path: Path, extradata: bytes | None) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".part")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.partial), "w", format="ogg")
        self.stream = self.container.add_stream("libopus", rate=SAMPLE_RATE)
        self.stream.codec_context.layout = "mono"
        self.stream.codec_context.extradata = extradata
        self.stream.time_base = TIME_BASE
        self._first_pts: int | None = None

    def write(self, packets: list[av.Packet], pts: int) -> None:
        """Mux one tick's packets, which the encoder stamped with the tick's ``pts``."""
        for packet in packets:
            if self._first_pts is None:
                self._first_pts = pts
            copy = av.Packet(bytes(packet))
            copy.pts = copy.dts = pts - self._first_pts
            copy.time_base = TIME_BASE
            copy.stream = self.stream
            self.container.mux(copy)

    def close(self) -> None:
        self.container.close()
        if self.partial.exists():  # a take that got no packet at all leaves no file
            self.partial.replace(self.path)


class SpeakerLevel:
    """A speaker's recent loudness and whether it counts as speaking (with a hold, so pauses between words do not flicker)."""

    def __init__(self) -> None:
        self.squares: collections.deque[float] = collections.deque(maxlen=LEVEL_WINDOW_TICKS)
        self.quiet_ticks = SPEAKING_HOLD_TICKS
        self.speaking = False

    def add(self, samples: np.ndarray) -> bool:
        block = samples.astype(np.float32)
        self.squares.append(float(np.mean(block * block)) if len(block) else 0.0)
        if self.rms() >= SPEAKING_RMS:
            self.quiet_ticks = 0
            self.speaking = True
        else:
            self.quiet_ticks += 1
            if self.quiet_ticks >= SPEAKING_HOLD_TICKS:
                self.speaking = False
        return self.speaking

    def rms(self) -> float:
        return float(np.sqrt(np.mean(self.squares))) if self.squares else 0.0


class Mixer:
    """The mixes of one Space, one tick at a time.

    :meth:`tick` takes a block per speaker whose voice is mixed and returns
    the packets of the mix (encoded once, for every listener and for each
    speaker not in the mix) and, per speaker in the mix, the packets of the
    mix without their own voice (encoded once per such speaker).
    """

    def __init__(self) -> None:
        self.mix_encoder = OpusEncoder()
        self.minus_encoders: dict[int, OpusEncoder] = {}
        self.levels: dict[int, SpeakerLevel] = {}
        self.recorder: Recorder | None = None
        # Takes finished (whole under their names), for the event loop to collect with take_finished():
        # a deque, whose appends and pops need no lock that a tick holds.
        self._finished: collections.deque[Path] = collections.deque()
        self.pts = 0
        self.ticks = 0
        # Ticks and recording changes run in worker threads; a cancelled await does not stop its thread.
        self._lock = threading.Lock()

    def tick(self, blocks: dict[int, np.ndarray]) -> tuple[list[av.Packet], dict[int, list[av.Packet]], set[int]]:
        """``(mix packets, {speaker: mix-minus packets}, speaking user ids)`` for one 20 ms tick."""
        with self._lock:
            return self._tick(blocks)

    def _tick(self, blocks: dict[int, np.ndarray]) -> tuple[list[av.Packet], dict[int, list[av.Packet]], set[int]]:
        pts = self.pts
        self.pts += SAMPLES
        self.ticks += 1
        total = np.zeros(SAMPLES, dtype=np.int32)
        for samples in blocks.values():
            total += samples
        mix = np.clip(total, -32768, 32767).astype(np.int16)
        mix_packets = self.mix_encoder.encode(mix, pts)
        if self.recorder is not None:
            try:
                self.recorder.write(mix_packets, pts)
            except Exception:  # a full disk ends the recording, not the Space's sound
                log.exception("spaces: recording to %s failed; it stops here", self.recorder.path)
                self._stop_recording()
        minus: dict[int, list[av.Packet]] = {}
        for user_id, samples in blocks.items():
            encoder = self.minus_encoders.get(user_id)
            if encoder is None:
                encoder = self.minus_encoders[user_id] = OpusEncoder()
            own = np.clip(total - samples, -32768, 32767).astype(np.int16)
            minus[user_id] = encoder.encode(own, pts)
        # Encoders and levels of those no longer in the mix go: a speaker back in the mix starts afresh.
        for user_id in [u for u in self.minus_encoders if u not in blocks]:
            del self.minus_encoders[user_id]
        speaking = set()
        for user_id, samples in blocks.items():
            level = self.levels.get(user_id)
            if level is None:
                level = self.levels[user_id] = SpeakerLevel()
            if level.add(samples):
                speaking.add(user_id)
        for user_id in [u for u in self.levels if u not in blocks]:
            del self.levels[user_id]
        return mix_packets, minus, speaking

    def start_recording(self, path: Path) -> None:
        with self._lock:
            self._stop_recording()
            self.recorder = Recorder(path, self.mix_encoder.extradata)

    def stop_recording(self) -> None:
        with self._lock:
            self._stop_recording()

    def take_finished(self) -> list[Path]:
        """The takes finished since the last call (stopped, replaced, ended, or cut short by a failed write)."""
        finished = []
        while self._finished:
            finished.append(self._finished.popleft())
        return finished

    def _stop_recording(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            try:
                recorder.close()
            except Exception:
                log.exception("spaces: finishing the recording %s failed", recorder.path)
            if recorder.path.is_file():
                self._finished.append(recorder.path)
