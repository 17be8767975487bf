"""Real media files for tests, encoded with PyAV (which comes with aiortc): tiny images and short videos."""

from __future__ import annotations

import io

import av
import numpy as np


def image(codec: str, container: str = "image2pipe", pixel_format: str = "rgb24", size: tuple[int, int] = (40, 30)) -> bytes:
    """One picture of ``size`` encoded with ``codec`` (png, mjpeg, gif, libwebp)."""
    out = io.BytesIO()
    with av.open(out, "w", format=container) as target:
        stream = target.add_stream(codec, rate=1)
        stream.width, stream.height = size
        stream.pix_fmt = pixel_format
        frame = av.VideoFrame.from_ndarray(np.zeros((size[1], size[0], 3), dtype=np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            target.mux(packet)
    return out.getvalue()


def video(container: str, codec: str, seconds: float = 1.0, rate: int = 10, size: tuple[int, int] = (64, 48)) -> bytes:
    """``seconds`` of changing grey, ``size`` pixels at ``rate`` frames a second."""
    out = io.BytesIO()
    with av.open(out, "w", format=container) as target:
        stream = target.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for number in range(int(seconds * rate)):
            pixels = np.full((size[1], size[0], 3), number * 5 % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                target.mux(packet)
        for packet in stream.encode():
            target.mux(packet)
    return out.getvalue()


PNG = image("png")
JPEG = image("mjpeg", pixel_format="yuvj420p")
GIF = image("gif", container="gif", pixel_format="rgb8")
WEBP = image("libwebp", container="webp", pixel_format="yuv420p")
MP4 = video("mp4", "libx264")
WEBM = video("webm", "libvpx")
