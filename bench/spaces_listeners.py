"""Listeners for ``bench/spaces.py``: many receive-only aiortc peers on one event loop, in a client process.

``bench/spaces.py`` starts several of these processes (``multiprocessing``,
spawn) and drives each through a pipe, one command at a time, each answered
``("ok", result)`` or ``("error", traceback)``:

* ``("join", {"system", "url", "space_id", "tokens"})``: one listener per
  token. ``system`` ``"ours"``: a websocket to ``/ws`` with the token, the
  ``kernel.hello`` read, then ``spaces.join`` with a receive-only audio offer
  and the answer from ``spaces.joined`` (the websocket stays open and is
  drained, as the server keeps sending ``spaces.state``). ``"baseline"``:
  the offer POSTed to ``/listen`` of ``bench/spaces_baseline.py``. Answers
  once every peer is connected (ICE and DTLS).
* ``("sample", None)``: each listener's RTP packets received so far (the
  receiver's ``packetsReceived``), whether its peer is still connected, the
  websocket close codes seen, this process's CPU seconds and its clock.
* ``("close", None)``: closes every peer and websocket.
* ``("quit", None)``: ends the process.

Listeners count packets without decoding them: aiortc decodes every audio
packet a receiver gets in a thread of its own, whether or not anyone reads
the track; :func:`no_decoding` replaces that worker with nothing, so that a
client process spends its time on what every listener must do (ICE, SRTP,
RTP) and can hold more listeners. The server is not touched by this.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for folder in (str(BENCH_DIR), str(REPO)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import httpx  # noqa: E402
from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402
from websockets.asyncio.client import ClientConnection  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from kernel import connect_socket, host_addresses, rtc_configuration  # noqa: E402

LOOPBACK = ["127.0.0.1"]
JOIN_CONCURRENCY = 4  # joins in flight per process (the server serialises a Space's joins anyway)
STEP_TIMEOUT = 60.0


# aiortc without decoding ------------------------------------------------------------------


class _Discard:
    """Stands in for a receiver's queue of frames to decode: takes everything, keeps nothing."""

    def put(self, item: object) -> None:
        pass


def _no_decoder(*args: object) -> None:
    """Stands in for aiortc's ``decoder_worker``: the thread it runs in ends at once."""


def no_decoding() -> None:
    """Make this process's aiortc receivers count packets (RTCP statistics) but never decode them."""
    import aiortc.rtcrtpreceiver as receiver_module

    if getattr(receiver_module, "_bench_no_decoding", False):
        return
    original_init = receiver_module.RTCRtpReceiver.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._RTCRtpReceiver__decoder_queue = _Discard()

    receiver_module.RTCRtpReceiver.__init__ = init  # type: ignore[method-assign]
    receiver_module.decoder_worker = _no_decoder  # type: ignore[assignment]
    receiver_module._bench_no_decoding = True  # type: ignore[attr-defined]


async def packets_received(pc: RTCPeerConnection) -> int:
    """RTP packets received on every receiver of ``pc`` (all SSRCs), from aiortc's statistics."""
    total = 0
    for receiver in pc.getReceivers():
        for stats in (await receiver.getStats()).values():
            if getattr(stats, "type", None) == "inbound-rtp":
                total += stats.packetsReceived
    return total


async def wait_connected(pc: RTCPeerConnection, timeout: float = STEP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while pc.connectionState != "connected":
        if pc.connectionState in ("failed", "closed"):
            raise RuntimeError(f"the peer connection {pc.connectionState}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not connected after {timeout:.0f} s (state {pc.connectionState})")
        await asyncio.sleep(0.05)


async def local_offer(pc: RTCPeerConnection) -> str:
    """``pc``'s offer, with host candidates on loopback only (aiortc gathers them inside setLocalDescription)."""
    with host_addresses(LOOPBACK):
        await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


# The realtime channel of ours ----------------------------------------------------------------


async def open_socket(url: str, token: str) -> ClientConnection:
    """A websocket to the server's ``/ws`` as ``token``'s owner, greeted."""
    ws, _ = await connect_socket(url, token, timeout=STEP_TIMEOUT, max_size=None)
    return ws


async def join_space(ws: ClientConnection, space_id: int, sdp: str, ref: int = 1) -> dict[str, Any]:
    """Send ``spaces.join`` and return its reply (``spaces.joined``); other messages until then are skipped unparsed."""
    await ws.send(json.dumps({"type": "spaces.join", "id": ref, "space_id": space_id, "sdp": sdp}))
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            while True:
                raw = await ws.recv()
                if '"ref"' not in raw:  # spaces.state and the like: not ours to read (they grow with the audience)
                    continue
                message = json.loads(raw)
                if message.get("ref") != ref:
                    continue
                if message.get("type") == "error":
                    raise RuntimeError(f"spaces.join refused: {message}")
                return message
    except TimeoutError:
        raise TimeoutError(f"no answer to spaces.join within {STEP_TIMEOUT:.0f} s") from None


@dataclass
class Drain:
    """Reads and drops everything a websocket receives, counting it; remembers how it closed."""

    ws: ClientConnection
    messages: int = 0
    chars: int = 0
    closed: str | None = None
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for raw in self.ws:
                self.messages += 1
                self.chars += len(raw)
        except ConnectionClosed:
            pass
        self.closed = f"{self.ws.close_code} {self.ws.close_reason}".strip()


# Listeners -----------------------------------------------------------------------------------


@dataclass
class Listener:
    pc: RTCPeerConnection
    drain: Drain | None = None

    async def close(self) -> None:
        await self.pc.close()
        if self.drain is not None:
            if self.drain.closed is None:
                await self.drain.ws.close()
            if self.drain.task is not None:
                await asyncio.gather(self.drain.task, return_exceptions=True)


def receive_only_peer() -> RTCPeerConnection:
    pc = RTCPeerConnection(rtc_configuration([]))  # no STUN
    pc.addTransceiver("audio", direction="recvonly")
    return pc


async def join_ours(url: str, space_id: int, token: str) -> Listener:
    ws = await open_socket(url, token)
    pc = receive_only_peer()
    listener = Listener(pc)
    try:
        reply = await join_space(ws, space_id, await local_offer(pc))
        listener.drain = Drain(ws)
        listener.drain.start()
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        await wait_connected(pc)
    except BaseException:
        await pc.close()
        await ws.close()
        raise
    return listener


async def join_baseline(client: httpx.AsyncClient, url: str) -> Listener:
    pc = receive_only_peer()
    try:
        response = await client.post(url + "/listen", json={"sdp": await local_offer(pc)}, timeout=STEP_TIMEOUT)
        response.raise_for_status()
        await pc.setRemoteDescription(RTCSessionDescription(response.json()["sdp"], "answer"))
        await wait_connected(pc)
    except BaseException:
        await pc.close()
        raise
    return Listener(pc)


class Audience:
    """This process's listeners."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []

    async def join(self, system: str, url: str, space_id: int | None, tokens: list[str], count: int) -> dict[str, Any]:
        started = time.monotonic()
        limit = asyncio.Semaphore(JOIN_CONCURRENCY)
        async with httpx.AsyncClient(trust_env=False) as client:

            async def one(index: int) -> None:
                async with limit:
                    if system == "ours":
                        assert space_id is not None
                        listener = await join_ours(url, space_id, tokens[index])
                    else:
                        listener = await join_baseline(client, url)
                    self.listeners.append(listener)

            results = await asyncio.gather(*(one(index) for index in range(count)), return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise RuntimeError(f"{len(failures)} of {count} listeners could not join; the first: {failures[0]!r}")
        return {"joined": len(self.listeners), "seconds": time.monotonic() - started}

    async def sample(self) -> dict[str, Any]:
        at = time.monotonic()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        counts = await asyncio.gather(*(packets_received(listener.pc) for listener in self.listeners))
        return {
            "at": at,
            "cpu": usage.ru_utime + usage.ru_stime,
            "packets": list(counts),
            "connected": [listener.pc.connectionState == "connected" for listener in self.listeners],
            "closed": [listener.drain.closed for listener in self.listeners if listener.drain and listener.drain.closed],
            "ws_chars": sum(listener.drain.chars for listener in self.listeners if listener.drain),
        }

    async def close(self) -> dict[str, Any]:
        listeners, self.listeners = self.listeners, []
        await asyncio.gather(*(listener.close() for listener in listeners), return_exceptions=True)
        return {"closed": len(listeners)}


async def serve_commands(pipe: Pipe) -> None:
    audience = Audience()
    try:
        while True:
            command, payload = await asyncio.to_thread(pipe.recv)
            try:
                if command == "join":
                    result = await audience.join(
                        payload["system"], payload["url"], payload.get("space_id"), payload["tokens"], payload["count"]
                    )
                elif command == "sample":
                    result = await audience.sample()
                elif command == "close":
                    result = await audience.close()
                elif command == "quit":
                    pipe.send(("ok", {}))
                    return
                else:
                    raise ValueError(f"unknown command {command!r}")
                pipe.send(("ok", result))
            except Exception:
                pipe.send(("error", traceback.format_exc()))
    finally:
        await audience.close()


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(pipe: Pipe, nice: int = 0) -> None:
    """The client process's entry point (``multiprocessing``, spawn); ``nice`` lowers its scheduling priority."""
    import logging
    import os

    import uvloop

    if nice:
        os.nice(nice)
    logging.basicConfig(level=logging.ERROR)
    raise_file_limit()
    no_decoding()
    uvloop.run(serve_commands(pipe))
