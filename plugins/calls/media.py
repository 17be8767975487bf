"""A test picture for scripted video calls; the tone and what arrived are :mod:`kernel.webrtc.media`'s.

The client library (:mod:`plugins.calls.client`), the sandbox's bots, the
tests and the benchmark send this track in video calls, so that a person
watching a browser test sees a live picture and an encoder has something
to encode.
"""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK_RATE = 90_000


class TestPictureTrack(MediaStreamTrack):
    """A moving test picture of ``width`` × ``height`` at ``fps`` frames a second (yuv420p).

    Grey bars with a white stripe that sweeps across, so that every frame
    differs (an encoder does not reduce it to nothing) and a person watching
    a browser test can see that the picture is live.
    """

    kind = "video"
    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30) -> None:
        super().__init__()
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError("width and height must be positive and even (yuv420p)")
        if not 0 < fps <= 120:
            raise ValueError("fps must be between 1 and 120")
        self.width, self.height, self.fps = width, height, fps
        self._frames = self._pattern(width, height, frames=fps)
        self._index = 0
        self._start: float | None = None

    @staticmethod
    def _pattern(width: int, height: int, frames: int) -> list[np.ndarray]:
        # Drawn once: making a picture per frame in numpy would cost more than encoding it.
        bars = (np.arange(width) * 8 // width * 28 + 16).astype(np.uint8)
        luma = np.tile(bars, (height, 1))
        chroma = np.full((height // 2, width), 128, dtype=np.uint8)  # U and V planes, stacked as yuv420p wants
        pictures = []
        stripe = max(2, width // 16)
        for number in range(frames):
            y = luma.copy()
            left = number * (width - stripe) // max(1, frames - 1)
            y[:, left : left + stripe] = 235
            pictures.append(np.concatenate([y, chroma]))
        return pictures

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._index += 1
            delay = self._start + self._index / self.fps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        frame = av.VideoFrame.from_ndarray(self._frames[self._index % len(self._frames)], format="yuv420p")
        frame.pts = self._index * VIDEO_CLOCK_RATE // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        return frame
