"""The baseline for ``bench/spaces.py``: plain aiortc relaying one speaker with ``MediaRelay``, an encoder per listener.

    python bench/spaces_baseline.py --port 8003

A Starlette app under uvicorn (``bench/serve.py``'s ``run``: one worker,
uvloop, httptools), the same stack as the real server, with HTTP signaling
(no trickle: aiortc gathers its candidates before answering):

* ``POST /speak`` ``{"sdp": offer}`` → ``{"sdp": answer}``: the speaker's
  peer. Its audio (decoded once by aiortc's receiver) becomes the source of
  an ``aiortc.contrib.media.MediaRelay``; one subscriber drains it from the
  start so that the relay reads in real time before anyone listens.
* ``POST /listen`` ``{"sdp": receive-only offer}`` → ``{"sdp": answer}``: a
  listener's peer, sending ``relay.subscribe(source)``: each listener's
  ``RTCRtpSender`` encodes the decoded frames to Opus itself (aiortc's
  stock way to fan one track out).
* ``POST /reset``: closes every peer (between runs).
* ``GET /``: 200 once serving.

Host candidates on 127.0.0.1 only, no STUN, as the real server is run by the bench.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for folder in (str(BENCH_DIR), str(REPO)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.contrib.media import MediaRelay  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from kernel import host_addresses, rtc_configuration  # noqa: E402

LOOPBACK = ["127.0.0.1"]
log = logging.getLogger("bench.spaces_baseline")


class Relay:
    """One speaker, any number of listeners."""

    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.source: MediaStreamTrack | None = None
        self.speaker: RTCPeerConnection | None = None
        self.listeners: set[RTCPeerConnection] = set()
        self.drain: asyncio.Task[None] | None = None

    async def speak(self, offer: str) -> str:
        await self.reset()
        pc = RTCPeerConnection(rtc_configuration([]))
        self.speaker = pc
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
        if not audio:
            raise ValueError("the offer has no audio")
        audio[0].direction = "recvonly"
        self.source = audio[0].receiver.track
        self.drain = asyncio.create_task(self._drain(self.relay.subscribe(self.source)))
        with host_addresses(LOOPBACK):
            await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    async def _drain(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    async def listen(self, offer: str) -> str:
        if self.source is None:
            raise ValueError("nobody speaks yet")
        pc = RTCPeerConnection(rtc_configuration([]))
        self.listeners.add(pc)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if not audio:
                raise ValueError("the offer has no audio")
            audio[0].sender.replaceTrack(self.relay.subscribe(self.source))
            audio[0].direction = "sendrecv"  # answered sendonly to a receive-only offer
            with host_addresses(LOOPBACK):
                await pc.setLocalDescription(await pc.createAnswer())
        except BaseException:
            self.listeners.discard(pc)
            await pc.close()
            raise

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and pc in self.listeners:
                self.listeners.discard(pc)
                await pc.close()

        return pc.localDescription.sdp

    async def reset(self) -> int:
        peers = list(self.listeners) + ([self.speaker] if self.speaker is not None else [])
        self.listeners.clear()
        self.speaker = None
        self.source = None
        await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)
        if self.drain is not None:
            self.drain.cancel()
            await asyncio.gather(self.drain, return_exceptions=True)
            self.drain = None
        self.relay = MediaRelay()
        return len(peers)


def create_app() -> Starlette:
    relay = Relay()

    async def ready(request: Request) -> Response:
        return JSONResponse({"listeners": len(relay.listeners), "speaking": relay.source is not None})

    async def speak(request: Request) -> Response:
        body = await request.json()
        return JSONResponse({"sdp": await relay.speak(body["sdp"])})

    async def listen(request: Request) -> Response:
        body = await request.json()
        try:
            return JSONResponse({"sdp": await relay.listen(body["sdp"])})
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=409)

    async def reset(request: Request) -> Response:
        return JSONResponse({"closed": await relay.reset()})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await relay.reset()

    return Starlette(
        routes=[
            Route("/", ready),
            Route("/speak", speak, methods=["POST"]),
            Route("/listen", listen, methods=["POST"]),
            Route("/reset", reset, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    import serve as bench_serve  # bench/serve.py: how every benchmark runs uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bench_serve.run(create_app(), args.port)


if __name__ == "__main__":
    main()
