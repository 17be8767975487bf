"""Subscribers for ``bench/quotes.py``: many ``trading.subscribe`` websockets on one event loop, in a client process.

``bench/quotes.py`` starts several of these processes (``multiprocessing``,
spawn, at a lower priority) and drives each through a pipe, one command at a
time, each answered ``("ok", result)`` or ``("error", traceback)``:

* ``("subscribe", {"url", "subscribers": [{"token", "symbols"}], "compression"})``:
  one websocket to ``/ws`` per subscriber (``Authorization: Bearer``), the
  ``kernel.hello`` read, then ``trading.subscribe`` with its symbols and the
  reply (``trading.subscribed``) awaited; from then on each socket is read by
  a task of its own. Answers once every subscriber is subscribed, with how
  many were on the real-time tier.
* ``("start", None)``: begin a measured window: every subscriber's counts
  and ages are reset and recorded from now on.
* ``("stop", None)``: end it; per subscriber the ticks and quotes received in
  the window, its tier, the batches it missed; every tick's age on arrival
  (ms); the sockets the server closed; this process's CPU seconds and the
  window's length by its clock.
* ``("close", None)``: closes every socket. ``("quit", None)``: ends the process.

The clients stand in for browsers on other machines but share the cores with
the server, so they do as little as a client can: a tick is read as bytes
(``recv(decode=False)``, no UTF-8 decoding), never parsed as JSON: ``at`` is
read from the message's fixed prefix (the kernel encodes
``{"type":"trading.tick","at":…,"quotes":[…]}`` in that order) and the quotes
are counted as occurrences of ``"symbol":``. Other messages (heartbeats) are
skipped unread. The arrival time is taken the moment ``recv`` returns, before
any of that.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from realtime import raise_file_limit  # noqa: E402 - bench/realtime.py
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

TICK_PREFIX = b'{"type":"trading.tick","at":'
QUOTE_MARK = b'"symbol":'
CONNECT_CONCURRENCY = 16  # subscriptions in flight per process
STEP_TIMEOUT = 60.0


async def open_socket(url: str, token: str, compression: str | None) -> ClientConnection:
    """A websocket to ``/ws`` as ``token``'s owner, greeted (``kernel.hello``)."""
    ws = await connect(
        url.replace("http://", "ws://") + "/ws",
        additional_headers={"Authorization": f"Bearer {token}"},
        proxy=None,
        open_timeout=STEP_TIMEOUT,
        max_size=None,
        compression=compression,
    )
    hello = json.loads(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT))
    if hello.get("type") != "kernel.hello":
        await ws.close()
        raise RuntimeError(f"greeted with {hello}")
    return ws


@dataclass
class Subscriber:
    ws: ClientConnection
    realtime: bool = False
    tick_ms: float = 1000.0
    recording: bool = False
    ticks: int = 0
    quotes: int = 0
    missed: int = 0  # batches skipped: a gap between two ticks' ``at`` of more than 1.5 ticks
    ages: list[float] = field(default_factory=list)
    last_at: int = 0
    closed: str | None = None
    task: asyncio.Task[None] | None = None

    async def subscribe(self, symbols: list[str], ref: str = "1") -> None:
        await self.ws.send(json.dumps({"type": "trading.subscribe", "id": ref, "symbols": symbols}))
        async with asyncio.timeout(STEP_TIMEOUT):
            while True:
                raw = await self.ws.recv()
                if '"ref"' not in raw:  # a heartbeat or a tick: not the reply
                    continue
                message = json.loads(raw)
                if message.get("ref") != ref:
                    continue
                if message.get("type") != "trading.subscribed":
                    raise RuntimeError(f"trading.subscribe refused: {message}")
                self.realtime = not message["delayed"]
                return

    def start(self) -> None:
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        prefix = len(TICK_PREFIX)
        try:
            while True:
                raw = await self.ws.recv(decode=False)
                arrived = time.time() * 1000
                if not raw.startswith(TICK_PREFIX):
                    continue
                at = int(raw[prefix : raw.index(b",", prefix)])
                if self.recording:
                    self.ticks += 1
                    self.quotes += raw.count(QUOTE_MARK)
                    self.ages.append(arrived - at)
                    if self.last_at and at - self.last_at > 1.5 * self.tick_ms:
                        self.missed += round((at - self.last_at) / self.tick_ms) - 1
                self.last_at = at
        except ConnectionClosed:
            pass
        self.closed = f"{self.ws.close_code} {self.ws.close_reason}".strip()

    async def close(self) -> None:
        if self.closed is None:
            await self.ws.close()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


class Crowd:
    """This process's subscribers."""

    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []
        self.started = 0.0
        self.cpu_started = 0.0

    async def subscribe(
        self, url: str, subscribers: list[dict[str, Any]], compression: str | None, tick_ms: float
    ) -> dict[str, Any]:
        began = time.monotonic()
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(spec: dict[str, Any]) -> None:
            async with limit:
                subscriber = Subscriber(await open_socket(url, spec["token"], compression), tick_ms=tick_ms)
                try:
                    await subscriber.subscribe(spec["symbols"])
                except BaseException:
                    await subscriber.ws.close()
                    raise
                subscriber.start()
                self.subscribers.append(subscriber)

        results = await asyncio.gather(*(one(spec) for spec in subscribers), return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise RuntimeError(f"{len(failures)} of {len(subscribers)} could not subscribe; the first: {failures[0]!r}")
        return {
            "subscribed": len(self.subscribers),
            "realtime": sum(s.realtime for s in self.subscribers),
            "seconds": time.monotonic() - began,
        }

    def start(self) -> dict[str, Any]:
        for subscriber in self.subscribers:
            subscriber.ticks = subscriber.quotes = subscriber.missed = 0
            subscriber.ages = []
            subscriber.recording = True
        self.started, self.cpu_started = time.monotonic(), cpu_seconds()
        return {}

    def stop(self) -> dict[str, Any]:
        seconds, cpu = time.monotonic() - self.started, cpu_seconds() - self.cpu_started
        for subscriber in self.subscribers:
            subscriber.recording = False
        return {
            "seconds": seconds,
            "cpu": cpu,
            "ticks": [s.ticks for s in self.subscribers],
            "quotes": [s.quotes for s in self.subscribers],
            "missed": [s.missed for s in self.subscribers],
            "realtime": [s.realtime for s in self.subscribers],
            "ages": [[round(age, 2) for age in s.ages] for s in self.subscribers],
            "closed": [s.closed for s in self.subscribers if s.closed is not None],
        }

    async def close(self) -> dict[str, Any]:
        subscribers, self.subscribers = self.subscribers, []
        await asyncio.gather(*(s.close() for s in subscribers), return_exceptions=True)
        return {"closed": len(subscribers)}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def serve_commands(pipe: Pipe) -> None:
    crowd = Crowd()
    try:
        while True:
            command, payload = await asyncio.to_thread(pipe.recv)
            try:
                if command == "subscribe":
                    result = await crowd.subscribe(
                        payload["url"], payload["subscribers"], payload["compression"], payload["tick_ms"]
                    )
                elif command == "start":
                    result = crowd.start()
                elif command == "stop":
                    result = crowd.stop()
                elif command == "close":
                    result = await crowd.close()
                elif command == "quit":
                    pipe.send(("ok", {}))
                    return
                else:
                    raise ValueError(f"unknown command {command!r}")
                pipe.send(("ok", result))
            except Exception:
                pipe.send(("error", traceback.format_exc()))
    finally:
        await crowd.close()


def main(pipe: Pipe, nice: int = 0) -> None:
    """The client process's entry point (``multiprocessing``, spawn); ``nice`` lowers its scheduling priority."""
    import logging
    import os

    import uvloop

    if nice:
        os.nice(nice)
    logging.basicConfig(level=logging.ERROR)
    raise_file_limit()
    uvloop.run(serve_commands(pipe))
