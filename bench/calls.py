"""Calls: how long a call takes to set up through the server, and how fast signaling is relayed.

Run:

    python bench/calls.py [--calls 20] [--idle-clients 1000] [--candidates 1000] [--interval-ms 5]
                          [--client-processes 2]

Starts the full application under uvicorn in a subprocess (this file with
``serve``: ``kernel.create_app`` with every bundled plugin, embedded SQLite
in a temporary folder, ``[plugins.calls] host_addresses = ["127.0.0.1"]``,
realtime rate limits raised to 100,000 so that the limiter is not what is
measured). Before it listens, the server process creates two accounts, a
caller holding premium and a callee who takes calls from everyone, plus
``--idle-clients`` more, each with an API token, through the kernel's
services (one shared argon2id hash). Then:

1. **Call set-up.** ``--calls`` calls in a row from the caller to the callee,
   two :class:`plugins.calls.client.CallClient` in this process (aiortc, host
   candidates on 127.0.0.1 only, no STUN), the callee answering as soon as
   ``calls.incoming`` arrives. Each is timed from the caller's first step
   (creating its peer connection, before the offer) until both sides are
   connected (ICE and DTLS) and each has received its first audio frame;
   then hung up. Interleaved with each, the floor: the same two aiortc peers
   with the same tracks and addresses, connected directly in this process
   (offer and answer handed over in memory), timed the same way. Prints
   p50 and p95 of both, and the ratio of the p50s; the target is a ratio
   of at most 2.
2. **Signaling relay.** ``--idle-clients`` websockets opened from
   ``--client-processes`` separate processes, greeted and left idle. The
   caller and callee (raw websockets in this process) set up a call by
   signaling alone (real SDP, no media), then the caller sends
   ``--candidates`` ``calls.candidate`` messages, one every
   ``--interval-ms``, each numbered in its candidate's foundation; the time
   from the caller's send to the callee's receipt is measured on this
   process's clock. Prints p50, p90, p99 and max; the target is p99 <= 10 ms.

No assertions on time: the figures are printed, with the machine's cores
and load. Everything is closed and the server and client processes are
stopped whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for folder in (str(BENCH_DIR), str(REPO)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import harness  # noqa: E402 - bench/harness.py: servers in subprocesses
from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402
from harness import Server  # noqa: E402
from websockets.asyncio.client import ClientConnection  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from kernel import ReceivedMedia, ToneTrack, connect_socket, host_addresses, rtc_configuration  # noqa: E402
from plugins.calls.client import CallClient  # noqa: E402

LOOPBACK = ["127.0.0.1"]
TARGET_RATIO = 2.0
TARGET_RELAY_P99_MS = 10.0
CALLER, CALLEE = "bench_caller", "bench_callee"
IDLE_PREFIX = "idle"
WARMUP_CALLS = 2
WARMUP_CANDIDATES = 50
CONNECT_CONCURRENCY = 32  # per idle-client process
STEP_TIMEOUT = 20.0
COMMAND_TIMEOUT = 300.0


def percentile(sorted_values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# The server process ----------------------------------------------------------------------


def serve_main(argv: list[str]) -> None:
    """``python bench/calls.py serve --port P --data-dir D --idle-users N --users-file F``."""
    import serve as bench_serve  # bench/serve.py: how every benchmark runs uvicorn

    parser = argparse.ArgumentParser(prog="bench/calls.py serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--idle-users", type=int, default=0)
    parser.add_argument("--users-file", type=Path, required=True)
    args = parser.parse_args(argv)
    raise_file_limit()
    app = bench_serve.plugin_app(args.data_dir, "calls", {"host_addresses": LOOPBACK})
    kernel = app.state.kernel
    accounts = []
    names = [CALLER, CALLEE] + [f"{IDLE_PREFIX}{number:05d}" for number in range(args.idle_users)]
    for name in names:
        user, token = bench_serve.account(kernel, name)
        accounts.append({"username": name, "token": token})
        if name == CALLER:
            kernel.entitlements.grant(user, "premium", source="operator", reference="bench", actor="bench")
    args.users_file.write_text(json.dumps(accounts))
    bench_serve.run(app, args.port)

class CallsServer(Server):
    """This file's ``serve`` in a subprocess (see :class:`harness.Server`)."""

    def __init__(self, log_path: Path, data_dir: Path, idle_users: int, users_file: Path) -> None:
        super().__init__("calls", log_path, "/readyz")
        self.command = [
            sys.executable, str(Path(__file__).resolve()), "serve", "--port", str(self.port),
            "--data-dir", str(data_dir), "--idle-users", str(idle_users), "--users-file", str(users_file),
        ]  # fmt: skip


# Idle clients, in their own processes ----------------------------------------------------


async def idle_clients(pipe: Pipe, url: str, tokens: list[str]) -> None:
    """Open a websocket per token to the server at ``url``, report, and sit reading until told to close."""
    sockets: list[ClientConnection] = []
    readers: list[asyncio.Task[None]] = []
    dropped: list[str] = []
    closing = False

    async def read(ws: ClientConnection) -> None:
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
        if not closing:
            dropped.append(f"{ws.close_code} {ws.close_reason}")

    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one(token: str) -> None:
        async with limit:
            ws, _ = await connect_socket(url, token, timeout=120)
            sockets.append(ws)
            readers.append(asyncio.create_task(read(ws)))

    try:
        started = time.monotonic()
        await asyncio.gather(*(open_one(token) for token in tokens))
        pipe.send(("ok", {"open": len(sockets), "seconds": time.monotonic() - started}))
        await asyncio.to_thread(pipe.recv)  # "close"
        closing = True
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        await asyncio.gather(*readers, return_exceptions=True)
        pipe.send(("ok", {"dropped": dropped}))
    except Exception:
        pipe.send(("error", traceback.format_exc()))


def idle_main(pipe: Pipe, url: str, tokens: list[str]) -> None:
    import uvloop

    raise_file_limit()
    uvloop.run(idle_clients(pipe, url, tokens))


@dataclass
class IdleProcess:
    process: multiprocessing.process.BaseProcess
    pipe: Pipe


def start_idle(url: str, tokens: list[str], processes: int) -> list[IdleProcess]:
    context = multiprocessing.get_context("spawn")
    started = []
    for number in range(processes):
        ours, theirs = context.Pipe()
        process = context.Process(
            target=idle_main, args=(theirs, url, tokens[number::processes]), name=f"idle-{number}", daemon=True
        )
        process.start()
        theirs.close()
        started.append(IdleProcess(process, ours))
    return started


def answer_of(idle: IdleProcess, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while not idle.pipe.poll(0.5):
        if not idle.process.is_alive():
            raise RuntimeError(f"{idle.process.name} died during {what} (exit code {idle.process.exitcode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{idle.process.name} did not answer {what} in {COMMAND_TIMEOUT:.0f} s")
    status, result = idle.pipe.recv()
    if status != "ok":
        raise RuntimeError(f"{idle.process.name} failed during {what}:\n{result}")
    return result


def stop_idle(processes: list[IdleProcess]) -> list[str]:
    dropped: list[str] = []
    for idle in processes:
        try:
            if idle.process.is_alive():
                idle.pipe.send("close")
                dropped += answer_of(idle, "closing")["dropped"]
        except (RuntimeError, OSError):
            pass
        if idle.process.is_alive():
            idle.process.kill()
        idle.process.join(5)
        idle.pipe.close()
    return dropped


# Call set-up ---------------------------------------------------------------------------


@dataclass
class SetUp:
    """One call's set-up, in seconds from the caller's first step."""

    total: float
    answered: float | None = None  # the caller learnt of the answer (through the server only)


async def direct_call() -> SetUp:
    """The floor: two aiortc peers with the clients' tracks and addresses, handed each other's SDP in memory."""
    started = time.monotonic()
    a, b = RTCPeerConnection(rtc_configuration([])), RTCPeerConnection(rtc_configuration([]))
    heard_a, heard_b = ReceivedMedia(), ReceivedMedia()
    tasks: list[asyncio.Task[None]] = []
    a.on("track", lambda track: tasks.append(asyncio.ensure_future(heard_a.consume(track))))
    b.on("track", lambda track: tasks.append(asyncio.ensure_future(heard_b.consume(track))))
    connected: dict[str, float] = {}
    for name, pc in (("a", a), ("b", b)):
        pc.on(
            "connectionstatechange",
            lambda name=name, pc=pc: pc.connectionState == "connected" and connected.setdefault(name, time.monotonic()),
        )
    tracks = [ToneTrack(440.0), ToneTrack(660.0)]
    try:
        a.addTrack(tracks[0])
        with host_addresses(LOOPBACK):
            await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(RTCSessionDescription(a.localDescription.sdp, "offer"))
        b.addTrack(tracks[1])
        with host_addresses(LOOPBACK):
            await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(RTCSessionDescription(b.localDescription.sdp, "answer"))
        await heard_a.wait_for(lambda media: media.audio_frames > 0, STEP_TIMEOUT)
        await heard_b.wait_for(lambda media: media.audio_frames > 0, STEP_TIMEOUT)
        assert heard_a.first_audio_at and heard_b.first_audio_at and len(connected) == 2
        return SetUp(max(heard_a.first_audio_at, heard_b.first_audio_at, *connected.values()) - started)
    finally:
        for track in tracks:
            track.stop()
        await a.close()
        await b.close()
        for task in tasks:
            task.cancel()


async def server_call(caller: CallClient, callee: CallClient) -> SetUp:
    """One call from ``caller`` to ``callee`` through the server, answered at once, timed to first audio both ways."""
    started = time.monotonic()
    outgoing = await caller.call(callee.username, media="audio")
    incoming = await asyncio.wait_for(callee.incoming.get(), STEP_TIMEOUT)
    await incoming.answer()
    await outgoing.wait_answered(STEP_TIMEOUT)
    answered = time.monotonic() - started
    await outgoing.received.wait_for(lambda media: media.audio_frames > 0, STEP_TIMEOUT)
    await incoming.received.wait_for(lambda media: media.audio_frames > 0, STEP_TIMEOUT)
    await outgoing.wait_connected(STEP_TIMEOUT)
    await incoming.wait_connected(STEP_TIMEOUT)
    moments = [outgoing.received.first_audio_at, incoming.received.first_audio_at, outgoing.connected_at, incoming.connected_at]
    total = max(moment for moment in moments if moment is not None) - started
    await outgoing.hangup()
    await incoming.wait_ended(STEP_TIMEOUT)
    return SetUp(total, answered)


async def measure_setup(url: str, tokens: dict[str, str], calls: int) -> tuple[list[SetUp], list[SetUp]]:
    """``calls`` through the server and as many direct, interleaved, after a warm-up of each."""
    through: list[SetUp] = []
    direct: list[SetUp] = []
    async with (
        CallClient(url, token=tokens[CALLER], host_addresses=LOOPBACK, reconnect=False) as caller,
        CallClient(url, token=tokens[CALLEE], host_addresses=LOOPBACK, reconnect=False, tone_hz=660.0) as callee,
    ):
        await callee.call_settings(allow=["everyone"])
        for number in range(WARMUP_CALLS + calls):
            measured_direct = await direct_call()
            measured_through = await server_call(caller, callee)
            if number >= WARMUP_CALLS:
                direct.append(measured_direct)
                through.append(measured_through)
    return through, direct


# Signaling relay -----------------------------------------------------------------------


async def next_of(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next message of type ``kind``; an ``error`` raises."""
    async with asyncio.timeout(STEP_TIMEOUT):
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") == kind:
                return message
            if message.get("type") == "error":
                raise RuntimeError(f"waiting for {kind}: {message}")


async def offer_and_answer() -> tuple[str, str]:
    """A real audio offer and its answer, from two aiortc peers that are closed straight after."""
    a, b = RTCPeerConnection(rtc_configuration([])), RTCPeerConnection(rtc_configuration([]))
    try:
        a.addTrack(ToneTrack())
        with host_addresses(LOOPBACK):
            await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(RTCSessionDescription(a.localDescription.sdp, "offer"))
        b.addTrack(ToneTrack())
        with host_addresses(LOOPBACK):
            await b.setLocalDescription(await b.createAnswer())
        return a.localDescription.sdp, b.localDescription.sdp
    finally:
        await a.close()
        await b.close()


async def measure_relay(url: str, tokens: dict[str, str], count: int, interval_ms: float) -> tuple[list[int], int]:
    """Latencies (ns) of ``count`` paced ``calls.candidate`` from caller to callee, after a warm-up; and how many were lost."""
    offer, answer = await offer_and_answer()

    async def open_as(name: str) -> ClientConnection:
        ws, _ = await connect_socket(url, tokens[name], timeout=STEP_TIMEOUT)
        return ws

    caller, callee = await open_as(CALLER), await open_as(CALLEE)
    try:
        call_id = f"bench-{uuid.uuid4()}"
        await caller.send(
            json.dumps({"type": "calls.invite", "id": 1, "call_id": call_id, "to": CALLEE, "media": "audio", "sdp": offer})
        )
        reply = await next_of(caller, "reply")
        if reply["call"]["state"] != "ringing":
            raise RuntimeError(f"the invite was not left ringing: {reply}")
        await next_of(callee, "calls.incoming")
        await callee.send(json.dumps({"type": "calls.answer", "id": 2, "call_id": call_id, "sdp": answer}))
        await next_of(callee, "reply")
        await next_of(caller, "calls.answered")

        sent: dict[int, int] = {}
        latencies: list[int] = []
        total = WARMUP_CANDIDATES + count
        all_in = asyncio.Event()

        async def receive() -> None:
            while True:
                message = json.loads(await callee.recv())
                now = time.perf_counter_ns()
                if message.get("type") == "calls.candidate":
                    seq = int(message["candidate"]["candidate"].split()[0].split(":")[1])
                    if seq >= WARMUP_CANDIDATES:
                        latencies.append(now - sent[seq])
                    if seq == total - 1:
                        all_in.set()
                elif message.get("type") == "error":
                    raise RuntimeError(f"the callee got {message}")

        receiver = asyncio.create_task(receive())
        interval = interval_ms / 1000
        started = time.monotonic()
        for seq in range(total):
            delay = started + seq * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            candidate = {
                "candidate": f"candidate:{seq} 1 udp 2130706431 127.0.0.1 {9 + seq % 60000} typ host",
                "sdpMid": "0",
                "sdpMLineIndex": 0,
            }
            sent[seq] = time.perf_counter_ns()
            await caller.send(json.dumps({"type": "calls.candidate", "call_id": call_id, "candidate": candidate}))
        try:
            await asyncio.wait_for(all_in.wait(), STEP_TIMEOUT)
        except TimeoutError:
            pass
        receiver.cancel()
        if receiver.done() and not receiver.cancelled() and receiver.exception():
            raise receiver.exception()  # type: ignore[misc]
        await caller.send(json.dumps({"type": "calls.hangup", "call_id": call_id}))
        return latencies, count - len(latencies)
    finally:
        await caller.close()
        await callee.close()


# Running and reporting ---------------------------------------------------------------------


@dataclass
class Figures:
    setup: list[str] = field(default_factory=list)
    through: list[SetUp] = field(default_factory=list)
    direct: list[SetUp] = field(default_factory=list)
    relay_ns: list[int] = field(default_factory=list)
    relay_lost: int = 0


def run(args: argparse.Namespace) -> Figures:
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="everything-bench-calls-") as tmp:
        workdir = Path(tmp)
        users_file = workdir / "users.json"
        log_path = workdir / "server.log"
        idle: list[IdleProcess] = []
        try:
            started = time.monotonic()
            with CallsServer(log_path, workdir / "data", args.idle_clients, users_file) as server:
                accounts = json.loads(users_file.read_text())
                tokens = {account["username"]: account["token"] for account in accounts}
                figures.setup.append(f"server up with {len(accounts):,} accounts in {time.monotonic() - started:.1f} s")

                figures.through, figures.direct = asyncio.run(measure_setup(server.url, tokens, args.calls))

                started = time.monotonic()
                idle_tokens = [account["token"] for account in accounts if account["username"].startswith(IDLE_PREFIX)]
                idle = start_idle(server.url, idle_tokens, args.client_processes)
                opened = sum(answer_of(process, "opening")["open"] for process in idle)
                seconds = time.monotonic() - started
                figures.setup.append(f"idle websockets: {opened:,} open and greeted, {len(idle)} process(es), {seconds:.1f} s")
                figures.relay_ns, figures.relay_lost = asyncio.run(
                    measure_relay(server.url, tokens, args.candidates, args.interval_ms)
                )
                dropped = stop_idle(idle)
                idle = []
                if dropped:
                    figures.setup.append(f"!! {len(dropped)} idle connections were closed by the server: {dropped[:3]}")
        except BaseException:
            if log_path.exists():
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
                print(f"\nthe server's last log lines:\n{tail}", file=sys.stderr)
            raise
        finally:
            stop_idle(idle)
    return figures


def cores() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", load average {:.2f} {:.2f} {:.2f} at start".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} cores ({usable} usable){load}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def report(figures: Figures, args: argparse.Namespace) -> None:
    print()
    for line in figures.setup:
        print(line)
    print()
    through = sorted(setup.total for setup in figures.through)
    direct = sorted(setup.total for setup in figures.direct)
    answered = sorted(setup.answered for setup in figures.through if setup.answered is not None)
    print(f"call set-up, {len(through)} calls each after {WARMUP_CALLS} warm-up, until both connected and both heard audio:")
    print(f"  through the server   p50 {ms(percentile(through, 50))}   p95 {ms(percentile(through, 95))}   max {ms(through[-1])}")
    told = f"p50 {ms(percentile(answered, 50))}   p95 {ms(percentile(answered, 95))}"
    print(f"    of which invite -> caller told of the answer   {told}")
    print(f"  direct (the floor)   p50 {ms(percentile(direct, 50))}   p95 {ms(percentile(direct, 95))}   max {ms(direct[-1])}")
    ratio = percentile(through, 50) / percentile(direct, 50)
    print(f"  p50 ratio {ratio:.2f}x the floor   target <= {TARGET_RATIO:g}x: {'met' if ratio <= TARGET_RATIO else 'NOT met'}")
    print()
    relay = sorted(figures.relay_ns)
    p99 = percentile(relay, 99) / 1e6
    met = p99 <= TARGET_RELAY_P99_MS and not figures.relay_lost
    print(
        f"signaling relay: calls.candidate caller -> callee in an answered call, {args.idle_clients:,} other users connected, "
        f"one every {args.interval_ms:g} ms, {len(relay):,} measured after {WARMUP_CANDIDATES} warm-up"
        + (f"   !! {figures.relay_lost} lost" if figures.relay_lost else "")
    )
    print(
        f"  p50 {percentile(relay, 50) / 1e6:6.2f} ms   p90 {percentile(relay, 90) / 1e6:6.2f} ms   "
        f"p99 {p99:6.2f} ms   max {relay[-1] / 1e6 if relay else float('nan'):6.2f} ms   "
        f"target p99 <= {TARGET_RELAY_P99_MS:g} ms: {'met' if met else 'NOT met'}"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--calls", type=int, default=20, help="measured calls, through the server and direct (default %(default)s)")
    add("--idle-clients", type=int, default=1000, help="idle users connected during the relay measure (default %(default)s)")
    add("--candidates", type=int, default=1000, help="measured calls.candidate messages (default %(default)s)")
    add("--interval-ms", type=float, default=5.0, help="between two candidates (default %(default)s)")
    add("--client-processes", type=int, default=2, help="processes holding the idle websockets (default %(default)s)")
    args = parser.parse_args()
    if args.calls < 1 or args.candidates < 1 or args.client_processes < 1:
        parser.error("--calls, --candidates and --client-processes must be at least 1")
    harness.exit_cleanly_on_sigterm()
    raise_file_limit()
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {cores()}, shared by the server, this process (both clients' aiortc peers) and the idle clients")
    print(
        "server: `serve` in this file, uvicorn 1 worker, uvloop, httptools; bundled plugins; embedded SQLite; "
        '[plugins.calls] host_addresses = ["127.0.0.1"]; realtime limits 100000/s'
    )
    print("media: aiortc on 127.0.0.1 only, no STUN; a 20 ms Opus tone each way")
    figures = run(args)
    report(figures, args)


if __name__ == "__main__":
    main()
