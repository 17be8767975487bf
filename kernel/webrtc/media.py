"""Media for scripted WebRTC peers: a tone to send, and a record of what arrived.

Bots, benchmarks and tests on both ends of a call or a Space send
:class:`ToneTrack` and read :class:`ReceivedMedia` to tell whether sound
(and picture) really went through: frame counts, sizes, sample rate, and
the loudest frequency heard, which is how a test knows that the tone it
hears is the other side's and not its own echo. Every plugin whose
clients carry media needs them, so they live in the kernel.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import math
import time
from collections.abc import Callable
from typing import cast

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

AUDIO_PTIME = 0.020  # 20 ms frames, as browsers send Opus


class ToneTrack(MediaStreamTrack):
    """A sine tone of ``frequency`` Hz, 16-bit mono at ``sample_rate``, in 20 ms frames paced in real time."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, sample_rate: int = 48_000, amplitude: float = 0.3) -> None:
        super().__init__()
        if not 0 < frequency < sample_rate / 2:
            raise ValueError(f"frequency must be between 0 and {sample_rate / 2:g} Hz")
        self.frequency = frequency
        self.sample_rate = sample_rate
        self.amplitude = amplitude
        self._samples = int(AUDIO_PTIME * sample_rate)
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms, when it is due: aiortc sends what ``recv`` returns at once, so pacing here is what a microphone's is."""
        if self.readyState != "live":
            raise MediaStreamError
        # Pace on an absolute schedule so that a late wake-up does not slow the tone down.
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += self._samples
            delay = self._start + self._pts / self.sample_rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        # The phase follows the sample count, so frames join without clicks.
        t = (self._pts + np.arange(self._samples)) / self.sample_rate
        wave = (self.amplitude * 32767 * np.sin(2 * math.pi * self.frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.sample_rate)
        return frame


class ReceivedMedia:
    """What one side of a call received: counts, sizes, rates, and the last second of sound.

    Fed by :meth:`consume`, one task per remote track; read at any time, or
    wait for a condition with :meth:`wait_for`.
    """

    def __init__(self, keep_seconds: float = 1.0) -> None:
        self.audio_frames = 0
        self.audio_samples = 0
        self.sample_rate: int | None = None
        self.channels: int | None = None
        self.video_frames = 0
        self.video_sizes: collections.Counter[tuple[int, int]] = collections.Counter()
        self.first_audio_at: float | None = None  # time.monotonic()
        self.first_video_at: float | None = None
        self._keep_seconds = keep_seconds
        self._sound: collections.deque[np.ndarray] = collections.deque()
        self._sound_length = 0
        self._changed = asyncio.Event()

    @property
    def video_size(self) -> tuple[int, int] | None:
        """The ``(width, height)`` received most often, or None before any picture."""
        common = self.video_sizes.most_common(1)
        return common[0][0] if common else None

    def add_audio(self, frame: av.AudioFrame) -> None:
        """Count ``frame`` and keep its sound (the first channel) for the spectrum; :meth:`consume` calls it, a test may too."""
        if self.first_audio_at is None:
            self.first_audio_at = time.monotonic()
        self.audio_frames += 1
        self.audio_samples += frame.samples
        self.sample_rate = frame.sample_rate
        self.channels = len(frame.layout.channels)
        samples = frame.to_ndarray()
        # Planar audio has a row per channel; packed has one row, channels interleaved. Keep the first channel.
        mono = samples[0] if frame.format.is_planar else samples[0, :: self.channels]
        self._sound.append(mono.astype(np.float32))
        self._sound_length += len(mono)
        keep = int(self._keep_seconds * frame.sample_rate)
        while self._sound and self._sound_length - len(self._sound[0]) >= keep:
            self._sound_length -= len(self._sound.popleft())
        self._poke()

    def add_video(self, frame: av.VideoFrame) -> None:
        """Count ``frame`` and its size: enough to tell a live picture at the size sent from none."""
        if self.first_video_at is None:
            self.first_video_at = time.monotonic()
        self.video_frames += 1
        self.video_sizes[(frame.width, frame.height)] += 1
        self._poke()

    def _poke(self) -> None:
        self._changed.set()

    def _spectrum(self) -> tuple[np.ndarray, float] | None:
        """The magnitude spectrum of the last second of sound received and its bin width (Hz); None before any."""
        if not self._sound or self.sample_rate is None:
            return None
        sound = np.concatenate(list(self._sound))
        return np.abs(np.fft.rfft(sound * np.hanning(len(sound)))), self.sample_rate / len(sound)

    def dominant_frequency(self) -> float | None:
        """The loudest frequency (Hz) in the last second of sound received, or None when there is none to speak of."""
        heard = self._spectrum()
        if heard is None:
            return None
        spectrum, bin_hz = heard
        if bin_hz > 10 or not spectrum.any():  # under a tenth of a second, or silence
            return None
        spectrum[0] = 0  # a DC offset is not a tone
        return float(np.argmax(spectrum) * bin_hz)

    def strength(self, frequency: float, width: float = 10.0) -> float:
        """The spectrum's peak within ``width`` Hz of ``frequency`` in the last second, relative to its highest peak.

        1.0 means ``frequency`` is the loudest tone heard; 0.0, not heard (or nothing heard at all).
        """
        heard = self._spectrum()
        if heard is None:
            return 0.0
        spectrum, bin_hz = heard
        spectrum[:5] = 0  # a DC offset or a slow drift is not a tone
        if not spectrum.max():
            return 0.0
        low, high = int((frequency - width) / bin_hz), int((frequency + width) / bin_hz) + 1
        return float(spectrum[max(low, 0) : high].max() / spectrum.max())

    async def wait_for(self, condition: Callable[[ReceivedMedia], bool], timeout: float) -> None:
        """Return once ``condition(self)`` holds; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not condition(self):
                self._changed.clear()
                await self._changed.wait()

    async def consume(self, track: MediaStreamTrack) -> None:
        """Read ``track`` until it ends, recording every frame; run it as a task and cancel it to stop."""
        audio = track.kind == "audio"
        with contextlib.suppress(MediaStreamError):
            while True:
                # A received track yields decoded frames of its kind (aiortc types them as any frame or packet).
                frame = await track.recv()
                if audio:
                    self.add_audio(cast(av.AudioFrame, frame))
                else:
                    self.add_video(cast(av.VideoFrame, frame))
