"""Spaces: how many listeners one Space carries in real time, and the server's CPU per listener, beside plain MediaRelay.

Run:

    python bench/spaces.py [--listeners 10,25,50,100,150,200] [--seconds 20] [--warmup 3] [--processes 4]
                            [--client-nice 10] [--systems ours,baseline]

Two servers, each in a subprocess, on free loopback ports:

* **ours**: this file with ``serve``: the full application
  (``kernel.create_app``, every bundled plugin, embedded SQLite in a
  temporary folder) under uvicorn (``bench/serve.py``: one worker, uvloop,
  httptools), ``[plugins.spaces] host_addresses = ["127.0.0.1"]``, realtime
  rate limits raised so that the limiter is not what is measured. Before it
  listens it creates a host and as many listener accounts as the largest N,
  each with an API token (one shared argon2id hash). The Spaces media
  backend (plugins/spaces/aiortc_media.py) decodes the speaker once, mixes,
  encodes the mix once a tick and hands the same packets to every
  listener's sender, which only packetises and encrypts them.
* **MediaRelay**: ``bench/spaces_baseline.py``: plain aiortc on the same
  stack, the speaker's track fanned out with ``aiortc.contrib.media.MediaRelay``
  so that each listener's ``RTCRtpSender`` runs an Opus encoder of its own,
  aiortc's stock way of sending one track to many peers.

Ours is swept first, then MediaRelay, in the same run. A sweep: the
server's CPU is measured with no Space at all (5 s); the
speaker (in this process: an aiortc peer sending a 440 Hz tone, 20 ms Opus
frames; with ours the host creates a Space through ``POST /api/spaces``,
joins it with ``spaces.join`` over ``/ws`` and unmutes) starts, and a
window is measured with the speaker alone (N = 0, for the marginal cost of
a listener). Then for each N in ``--listeners``, in order, receive-only
listeners are added until there are N, spread evenly over ``--processes``
client processes (``bench/spaces_listeners.py``: many aiortc peers on one
event loop each; with ours every listener has its own account, token,
websocket and ``spaces.join``; listeners count RTP packets without
decoding them). After ``--warmup`` seconds, every listener's packet count
and the server process's CPU time (``/proc/<pid>/stat``, all its threads)
are read, and again ``--seconds`` later. A sweep stops at the first N not
kept in real time; then the Space is ended (or the baseline reset) and the
listeners closed.

Prints, per N and server: the server's CPU in % of one core and per
listener (total / N, and marginal: above the speaker alone), the packets a
second of the slowest listener and the median one, whether every listener
kept real time (at least 49 of the 50 packets a second, peer still
connected), the client processes' CPU and how busy the whole machine was;
how long the server's event loop thread waited for a CPU (``/proc/<pid>/schedstat``:
high means the server was starved by the rest of the machine); how long
the step's joins took and the server CPU they cost; for ours the realtime
messages the listeners received (``spaces.state`` names up to 100 listeners;
listener churn reaches everyone at most every 250 ms). Then a table side by side and the largest
N each kept in real time. The target: ours at
most 0.5 % of a core per listener (at least 200 listeners per core;
LiveKit publishes about 190 per core for large audio rooms).

The clients share the machine with the servers: on a 2-core machine the
client processes (ICE, DTLS, SRTP and RTP for every listener, in Python)
take about as much CPU as the server. They stand in for other machines,
so they run at a lower priority (``--client-nice``, default 10), and
with ours the server's own count of packets sent (``/bench/spaces-stats``,
a route this file adds to its server: the mixer's ticks, skips and tick
times, and the RTP packets its senders sent) tells a server that fell
behind (the mixer skipped ahead: every listener loses the same ticks) from
clients that did; the machine's busy % and the event loop's wait for a CPU
tell a server starved by the rest of the machine. Only the server's own CPU is divided
by N. No assertions on speed: the figures are printed, with the machine's
cores and load.

Measured on this project's machine (2 cores, shared with other work),
2026-11-21, ``--listeners 50,100,200,250 --seconds 20`` (load average
about 3 from other work):

- ours kept real time at every step up to 250 listeners: 0.339 % of a
  core per listener (about 295 listeners per core; marginal 0.297 %), 85 %
  of a core in all; 200 listeners 0.367 %, 100 listeners 0.381 %; the
  speaker alone 10.5 %, no Space 0.7 %. At 250 the whole machine was 88 %
  busy, most of the rest being the client processes.
- joins: 50 listeners joined in 1.6 to 1.8 s, 100 more in 12.5 s (0.02 to
  0.07 server CPU s a join beyond the media's); the listeners received
  22 MB of realtime messages by 200 listeners. (Before the state named at
  most 100 listeners and listener churn was told once per 250 ms, it was
  449 MB, and 150 to 200 listeners took 23 to 84 s to join.)
- MediaRelay (an Opus encoder per listener) kept real time at 10 listeners
  in an earlier run, at 9.5 % of a core per listener, and not at 25 (24
  packets/s, the server at 104 % of a core); in this run it failed at 50
  (15 packets/s, 104 % of a core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
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
import httpx  # noqa: E402
import spaces_listeners  # noqa: E402 - bench/spaces_listeners.py: the client processes
from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402
from harness import Server  # noqa: E402

from kernel import RealtimeClient, ToneTrack, rtc_configuration  # noqa: E402
from plugins.spaces.service import SPACES  # noqa: E402

LOOPBACK = ["127.0.0.1"]
HOST_NAME = "bench_host"
LISTENER_PREFIX = "lis"
PACKETS_PER_SECOND = 50  # 20 ms Opus frames
REAL_TIME = 49.0  # packets a second every listener must keep
TARGET_PERCENT_PER_LISTENER = 0.5
DEFAULT_LISTENERS = "10,25,50,100,150,200"
COMMAND_TIMEOUT = 900.0
SETTLE_SECONDS = 2.0


# The server process (ours) -----------------------------------------------------------------


def serve_main(argv: list[str]) -> None:
    """``python bench/spaces.py serve --port P --data-dir D --listeners N --users-file F``."""
    import serve as bench_serve  # bench/serve.py: how every benchmark runs uvicorn
    from starlette.routing import Route


    parser = argparse.ArgumentParser(prog="bench/spaces.py serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--listeners", type=int, default=0)
    parser.add_argument("--users-file", type=Path, required=True)
    args = parser.parse_args(argv)
    spaces_listeners.raise_file_limit()
    app = bench_serve.plugin_app(args.data_dir, "spaces", {"host_addresses": LOOPBACK})
    kernel = app.state.kernel
    accounts = []
    for name in [HOST_NAME] + [f"{LISTENER_PREFIX}{number:05d}" for number in range(args.listeners)]:
        accounts.append({"username": name, "token": bench_serve.account(kernel, name)[1]})
    args.users_file.write_text(json.dumps(accounts))
    app.router.routes.insert(0, Route("/bench/spaces-stats", media_stats_endpoint(SPACES.of(kernel).media)))
    bench_serve.run(app, args.port)


def media_stats_endpoint(media: Any) -> Any:
    """``GET /bench/spaces-stats``, added to the bench's server only: for each Space with media, the mixer's statistics
    (:meth:`AiortcMedia.stats`) and the RTP packets sent to all its participants so far (their senders' statistics)."""
    from starlette.responses import JSONResponse

    async def endpoint(request: Any) -> Any:
        found = {}
        for space_id, space in list(media._spaces.items()):  # the backend's own table: a bench may look inside
            sent = 0
            for participant in list(space.participants.values()):
                for sender in participant.pc.getSenders():
                    for stats in (await sender.getStats()).values():
                        if getattr(stats, "type", None) == "outbound-rtp":
                            sent += stats.packetsSent
            found[space_id] = {**media.stats(space_id), "packets_sent": sent}
        return JSONResponse(found)

    return endpoint


class OursServer(Server):
    """This file's ``serve`` in a subprocess (see :class:`harness.Server`)."""

    def __init__(self, log_path: Path, data_dir: Path, listeners: int, users_file: Path) -> None:
        super().__init__("spaces", log_path, "/readyz")
        self.command = [
            sys.executable, str(Path(__file__).resolve()), "serve", "--port", str(self.port),
            "--data-dir", str(data_dir), "--listeners", str(listeners), "--users-file", str(users_file),
        ]  # fmt: skip


class BaselineServer(Server):
    """``bench/spaces_baseline.py`` in a subprocess."""

    def __init__(self, log_path: Path) -> None:
        super().__init__("baseline", log_path, "/")
        self.command = [sys.executable, str(BENCH_DIR / "spaces_baseline.py"), "--port", str(self.port)]


# Measuring -----------------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """A process's CPU time so far, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loop_run_delay(pid: int) -> float:
    """Seconds the process's main thread (the server's event loop) has spent runnable but waiting for a CPU."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of every core so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def percentile(sorted_values: Sequence[float], percent: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * percent / 100))]


@dataclass
class Run:
    """One server carrying one Space with ``listeners`` listeners for a measured window."""

    system: str
    listeners: int
    seconds: float = 0.0
    server_cpu: float = 0.0  # CPU seconds in the window
    clients_cpu: float = 0.0
    machine_busy: float = float("nan")  # share of all cores busy in the window, 0..1
    rates: list[float] = field(default_factory=list)  # packets a second, one per listener
    disconnected: int = 0
    websockets_closed: list[str] = field(default_factory=list)
    loop_waiting: float = float("nan")  # share of the window the server's event loop thread waited for a CPU
    join_seconds: float = 0.0  # adding this step's listeners (``joins`` of them), wall time
    join_server_cpu: float = 0.0  # and the server's CPU seconds meanwhile
    join_extra_cpu: float = float("nan")  # of which beyond the previous step's media (its CPU rate over the join time)
    joins: int = 0
    mixer_ticks: float = float("nan")  # ours: the Space's mixer ticks a second in the window (50 = on time)
    late_skips: int = 0  # ours: times the mixer was more than 200 ms late and skipped ahead
    tick_ms_mean: float = float("nan")
    tick_ms_max: float = float("nan")
    sent_per_listener: float = float("nan")  # ours: RTP packets the server sent a second, per participant
    ws_chars: int = 0  # realtime message characters the listeners had received by the end of the window
    error: str | None = None
    idle: bool = False  # the server with no Space at all

    @property
    def server_percent(self) -> float:
        return 100 * self.server_cpu / self.seconds if self.seconds else float("nan")

    @property
    def per_listener(self) -> float:
        return self.server_percent / self.listeners if self.listeners else float("nan")

    def marginal(self, alone: Run | None) -> float:
        if alone is None or not self.listeners or alone.error:
            return float("nan")
        return (self.server_percent - alone.server_percent) / self.listeners

    @property
    def real_time(self) -> bool:
        if self.error or self.disconnected or self.websockets_closed:
            return False
        return not self.listeners or (len(self.rates) == self.listeners and min(self.rates) >= REAL_TIME)


# Client processes ------------------------------------------------------------------------------


@dataclass
class ClientProcess:
    process: multiprocessing.process.BaseProcess
    pipe: Pipe


def start_clients(count: int, nice: int) -> list[ClientProcess]:
    context = multiprocessing.get_context("spawn")
    started = []
    for number in range(count):
        ours, theirs = context.Pipe()
        process = context.Process(target=spaces_listeners.main, args=(theirs, nice), name=f"listeners-{number}", daemon=True)
        process.start()
        theirs.close()
        started.append(ClientProcess(process, ours))
    return started


def answer_of(client: ClientProcess, what: str) -> Any:
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while not client.pipe.poll(0.2):
        if not client.process.is_alive():
            raise RuntimeError(f"{client.process.name} died during {what} (exit code {client.process.exitcode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{client.process.name} did not answer {what} in {COMMAND_TIMEOUT:.0f} s")
    status, result = client.pipe.recv()
    if status != "ok":
        raise RuntimeError(f"{client.process.name} failed during {what}:\n{result}")
    return result


async def command_all(clients: list[ClientProcess], command: str, payloads: list[Any] | None = None) -> list[Any]:
    """Send ``command`` to every client process at once; their answers, in order."""
    for index, client in enumerate(clients):
        client.pipe.send((command, payloads[index] if payloads else None))
    return await asyncio.gather(*(asyncio.to_thread(answer_of, client, command) for client in clients))


def stop_clients(clients: list[ClientProcess]) -> None:
    for client in clients:
        try:
            if client.process.is_alive():
                client.pipe.send(("quit", None))
                answer_of(client, "quitting")
        except (RuntimeError, OSError, EOFError):
            pass
        client.process.join(10)
        if client.process.is_alive():
            client.process.kill()
            client.process.join(5)
        client.pipe.close()


# Speakers (in this process) ----------------------------------------------------------------------


class Speaker:
    """The one speaker of a run: an aiortc peer sending a tone."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(rtc_configuration([]))
        self.tone = ToneTrack(440.0)
        self.pc.addTrack(self.tone)

    async def start(self) -> None:
        raise NotImplementedError

    async def end(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        self.tone.stop()
        await self.pc.close()


class OursSpeaker(Speaker):
    """The host: creates a Space, joins it over /ws, unmutes; ``end`` ends the Space.

    Through a :class:`kernel.RealtimeClient`: the API, and the socket, whose reader takes what the Space sends.
    """

    def __init__(self, url: str, token: str) -> None:
        super().__init__()
        self.client = RealtimeClient(url, token=token, request_timeout=spaces_listeners.STEP_TIMEOUT)
        self.space_id: int | None = None

    async def start(self) -> None:
        await self.client.connect()
        self.space_id = (await self.client.api("POST", "/api/spaces", {"title": "Bench Space"}))["id"]
        offer = await spaces_listeners.local_offer(self.pc)
        reply = await self.client.request({"type": "spaces.join", "space_id": self.space_id, "sdp": offer})
        await self.pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        await self.client.request({"type": "spaces.mute", "muted": False})
        await spaces_listeners.wait_connected(self.pc)

    async def end(self) -> None:
        try:
            if self.space_id is not None:
                await self.client.api("POST", f"/api/spaces/{self.space_id}/end")
            await self.close()
        finally:
            await self.client.close()


class BaselineSpeaker(Speaker):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    async def start(self) -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=60) as client:
            response = await client.post(self.url + "/speak", json={"sdp": await spaces_listeners.local_offer(self.pc)})
            response.raise_for_status()
        await self.pc.setRemoteDescription(RTCSessionDescription(response.json()["sdp"], "answer"))
        await spaces_listeners.wait_connected(self.pc)

    async def end(self) -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=120) as client:
            (await client.post(self.url + "/reset")).raise_for_status()
        await self.close()


# One run ------------------------------------------------------------------------------------------


async def media_stats(url: str) -> dict[str, Any] | None:
    """The one Space's media statistics from the bench server's ``/bench/spaces-stats``, or None."""
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        found = (await client.get(url + "/bench/spaces-stats")).json()
    return next(iter(found.values()), None)


async def window(system: str, url: str, listeners: int, pid: int, clients: list[ClientProcess], seconds: float) -> Run:
    """Read every listener's packet count and the server's CPU, wait ``seconds``, read again."""
    run = Run(system, listeners)
    first_media = await media_stats(url) if system == "ours" else None
    first_cpu, first_wait, first_machine = process_cpu_seconds(pid), loop_run_delay(pid), machine_ticks()
    first_at = time.monotonic()
    first = await command_all(clients, "sample")
    await asyncio.sleep(seconds)
    last = await command_all(clients, "sample")
    run.seconds = time.monotonic() - first_at
    last_cpu, last_wait, last_machine = process_cpu_seconds(pid), loop_run_delay(pid), machine_ticks()
    last_media = await media_stats(url) if system == "ours" else None
    if first_media and last_media:
        run.mixer_ticks = (last_media["ticks"] - first_media["ticks"]) / run.seconds
        run.late_skips = last_media["late_ticks"] - first_media["late_ticks"]
        run.tick_ms_mean, run.tick_ms_max = last_media["tick_ms_mean"], last_media["tick_ms_max"]
        participants = max(1, last_media["participants"])
        run.sent_per_listener = (last_media["packets_sent"] - first_media["packets_sent"]) / run.seconds / participants
    run.server_cpu = last_cpu - first_cpu
    run.loop_waiting = (last_wait - first_wait) / run.seconds
    run.machine_busy = (last_machine[0] - first_machine[0]) / max(1, last_machine[1] - first_machine[1])
    run.clients_cpu = sum(b["cpu"] - a["cpu"] for a, b in zip(first, last, strict=True))
    for a, b in zip(first, last, strict=True):
        span = b["at"] - a["at"]
        run.rates += [(after - before) / span for before, after in zip(a["packets"], b["packets"], strict=True)]
        run.disconnected += sum(1 for connected in b["connected"] if not connected)
        run.websockets_closed += b["closed"]
        run.ws_chars += b["ws_chars"]
    return run


def short(error: BaseException) -> str:
    """An error on one line: its first line and, for a client's traceback, its last."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()] or [repr(error)]
    return (lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1].strip()}")[:400]


async def sweep(
    system: str, server: Server, steps: list[int], clients: list[ClientProcess], tokens: list[str], args: argparse.Namespace
) -> list[Run]:
    """One speaker, then listeners added step by step up to each N, a window measured at each; stops at the first N
    not kept in real time. The first runs are the server with no Space, then the speaker alone (N = 0)."""
    assert server.process is not None
    pid = server.process.pid
    runs: list[Run] = []
    speaker: Speaker = OursSpeaker(server.url, tokens[0]) if system == "ours" else BaselineSpeaker(server.url)
    joined = 0
    try:
        idle = await window(system, server.url, 0, pid, clients, min(args.seconds, 5.0))
        idle.idle = True
        runs.append(idle)
        print(describe(idle, None), flush=True)
        await speaker.start()
        space_id = getattr(speaker, "space_id", None)
        await asyncio.sleep(args.warmup)
        alone = await window(system, server.url, 0, pid, clients, min(args.seconds, 10.0))
        runs.append(alone)
        print(describe(alone, None), flush=True)
        for n in steps:
            # Listener i (token i + 1; the host holds token 0) lives in client process i % processes.
            payloads = []
            for index in range(len(clients)):
                mine = [i for i in range(joined, n) if i % len(clients) == index]
                payloads.append(
                    {
                        "system": system,
                        "url": server.url,
                        "space_id": space_id,
                        "tokens": [tokens[1 + i] for i in mine],
                        "count": len(mine),
                    }
                )
            cpu_before, started = process_cpu_seconds(pid), time.monotonic()
            try:
                await command_all(clients, "join", payloads)
            except Exception as error:
                run = Run(system, n, error=f"joining: {short(error)}")
                runs.append(run)
                print(describe(run, alone), flush=True)
                traceback.print_exc()
                break
            join_seconds, join_cpu = time.monotonic() - started, process_cpu_seconds(pid) - cpu_before
            joined = n
            await asyncio.sleep(args.warmup)
            run = await window(system, server.url, n, pid, clients, args.seconds)
            previous = runs[-1]
            run.join_seconds, run.join_server_cpu, run.joins = join_seconds, join_cpu, n - previous.listeners
            # What the joins cost beyond the media the Space was already carrying at the previous step's rate.
            run.join_extra_cpu = join_cpu - previous.server_cpu / previous.seconds * join_seconds
            runs.append(run)
            print(describe(run, alone), flush=True)
            if not run.real_time:
                break
    except Exception as error:
        runs.append(Run(system, joined, error=f"{type(error).__name__}: {short(error)}"))
        print(describe(runs[-1], None), flush=True)
        traceback.print_exc()
    finally:
        try:
            await speaker.end()
        except Exception:
            traceback.print_exc()
        try:
            await command_all(clients, "close")
        except Exception:
            traceback.print_exc()
        await asyncio.sleep(SETTLE_SECONDS)
    return runs


# Reporting -----------------------------------------------------------------------------------------


def cores() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{os.cpu_count()} cores ({usable} usable), load average {'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())}"


def describe(run: Run, alone: Run | None) -> str:
    """Two lines: the server's CPU and the listeners' packets; then what else the machine was doing."""
    if run.error:
        return f"  {run.system:<8} N={run.listeners:<4} FAILED: {run.error}"
    rates = sorted(run.rates)
    first = f"  {run.system:<8} N={run.listeners:<4} server {run.server_percent:5.1f} % of a core"
    if run.idle:
        return f"  {run.system:<8} idle   server {run.server_percent:5.1f} % of a core with no Space"
    if run.listeners:
        first += f" = {run.per_listener:5.3f} % per listener (marginal {run.marginal(alone):5.3f} %)"
        first += f"   listeners' pkt/s min {rates[0]:4.1f} p50 {percentile(rates, 50):4.1f}"
        first += f"   real time: {'yes' if run.real_time else 'NO'}"
    else:
        first += " with the speaker alone"
    second = (
        f"{'':16}event loop waiting for a CPU {100 * run.loop_waiting:3.0f} % of the window; "
        f"clients {100 * run.clients_cpu / run.seconds:5.1f} % of a core; machine {100 * run.machine_busy:3.0f} % busy"
    )
    if run.mixer_ticks == run.mixer_ticks:  # not NaN
        second += (
            f"\n{'':16}mixer {run.mixer_ticks:4.1f} ticks/s ({run.late_skips} skips ahead), "
            f"tick {run.tick_ms_mean:.2f} ms mean {run.tick_ms_max:.1f} ms max; "
            f"server sent {run.sent_per_listener:4.1f} packets/s per participant"
        )
    if run.joins:
        second += (
            f"; {run.joins} joins took {run.join_seconds:.1f} s and {run.join_server_cpu:.1f} server CPU s "
            f"({run.join_extra_cpu / run.joins:.2f} s a join beyond the media)"
        )
    if run.ws_chars:
        second += f"; listeners received {run.ws_chars / 1e6:.1f} MB of realtime messages so far"
    if run.disconnected:
        second += f"\n{'':16}!! {run.disconnected} peers no longer connected"
    if run.websockets_closed:
        second += f"\n{'':16}!! {len(run.websockets_closed)} websockets closed by the server: {run.websockets_closed[:2]}"
    return first + "\n" + second


def cell(run: Run | None, alone: Run | None) -> str:
    if run is None:
        return f"{'-':>28}"
    if run.error:
        return f"{'failed':>28}"
    marginal = run.marginal(alone)
    return f"{run.per_listener:6.3f} ({marginal:6.3f})  {min(run.rates):4.1f}  {'yes' if run.real_time else 'NO':>4}"


def report(runs: dict[tuple[str, int], Run], steps: list[int], args: argparse.Namespace) -> None:
    alone = {system: runs.get((system, 0)) for system in ("ours", "baseline")}
    print()
    for system in args.systems:
        idle, base = runs.get((system, -1)), alone[system]
        if idle is not None and base is not None and not idle.error and not base.error:
            print(
                f"{system}: server {idle.server_percent:.1f} % of a core with no Space, "
                f"{base.server_percent:.1f} % with the speaker alone"
            )
    print(f"summary ({args.seconds:g} s windows after {args.warmup:g} s warm-up; server CPU only, % of one core per listener:")
    print("total / N, and (marginal) above the speaker alone; min pkt/s of the slowest listener; real time = all >= 49 pkt/s)")
    header = f"{'N':>5} | {'ours %/listener':>16} {'min':>5} {'rt?':>4} | {'MediaRelay %/listener':>16} {'min':>5} {'rt?':>4}"
    header += " | machine busy"
    print(header)
    print("-" * len(header))
    for n in steps:
        ours, base = runs.get(("ours", n)), runs.get(("baseline", n))
        if ours is None and base is None:
            continue
        busy = max((r.machine_busy for r in (ours, base) if r is not None and not r.error), default=float("nan"))
        print(f"{n:>5} | {cell(ours, alone['ours'])} | {cell(base, alone['baseline'])} | {100 * busy:3.0f} %")
    print()
    for system, name in (("ours", "ours (mix encoded once)"), ("baseline", "MediaRelay (encoder per listener)")):
        kept = [n for n in steps if (r := runs.get((system, n))) is not None and r.real_time]
        best = max(kept, default=None)
        if best is None:
            print(f"{name}: no N in the list kept real time")
            continue
        run = runs[(system, best)]
        per_core = 100 / run.per_listener if run.per_listener else float("inf")
        print(
            f"{name}: largest N kept in real time {best}; there the server used {run.per_listener:.3f} % of a core "
            f"per listener (~{per_core:.0f} listeners per core at that rate), marginal {run.marginal(alone[system]):.3f} %"
        )
    ours_best = [runs[("ours", n)] for n in steps if ("ours", n) in runs and runs[("ours", n)].real_time]
    if ours_best:
        figure = ours_best[-1].per_listener
        verdict = "met" if figure <= TARGET_PERCENT_PER_LISTENER else "NOT met"
        print(f"target: ours <= {TARGET_PERCENT_PER_LISTENER} % of a core per listener at the largest N kept: {verdict}")


async def run_all(args: argparse.Namespace, steps: list[int]) -> dict[tuple[str, int], Run]:
    runs: dict[tuple[str, int], Run] = {}
    with tempfile.TemporaryDirectory(prefix="everything-bench-spaces-") as tmp:
        workdir = Path(tmp)
        users_file = workdir / "users.json"
        ours_log, base_log = workdir / "server.log", workdir / "baseline.log"
        clients: list[ClientProcess] = []
        try:
            started = time.monotonic()
            with (
                OursServer(ours_log, workdir / "data", max(steps), users_file) as ours,
                BaselineServer(base_log) as baseline,
            ):
                accounts = json.loads(users_file.read_text())
                tokens = [account["token"] for account in accounts]  # the host first
                clients = start_clients(args.processes, args.client_nice)
                print(
                    f"servers up ({len(accounts):,} accounts), {len(clients)} client processes started, "
                    f"{time.monotonic() - started:.1f} s",
                    flush=True,
                )
                servers = {"ours": ours, "baseline": baseline}
                for system in args.systems:
                    for run in await sweep(system, servers[system], steps, clients, tokens, args):
                        runs.setdefault((system, -1 if run.idle else run.listeners), run)
        except BaseException:
            for path in (ours_log, base_log):
                if path.exists():
                    tail = "\n".join(path.read_text(errors="replace").splitlines()[-15:])
                    print(f"\n{path.name}, last lines:\n{tail}", file=sys.stderr)
            raise
        finally:
            stop_clients(clients)
    return runs


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--listeners", default=DEFAULT_LISTENERS, help="listener counts to step through, comma-separated (default %(default)s)")
    add("--seconds", type=float, default=20.0, help="measured seconds per run (default %(default)s)")
    add("--warmup", type=float, default=3.0, help="seconds between the last join and the measure (default %(default)s)")
    add("--processes", type=int, default=4, help="client processes holding the listeners (default %(default)s)")
    add("--client-nice", type=int, default=10, help="niceness of the client processes (default %(default)s)")
    add("--systems", default="ours,baseline", help="which servers to run: ours, baseline or both (default %(default)s)")
    args = parser.parse_args()
    try:
        steps = sorted({int(part) for part in args.listeners.split(",") if part.strip()})
    except ValueError:
        parser.error("--listeners: comma-separated whole numbers")
    if not steps or steps[0] < 1 or args.processes < 1 or args.seconds <= 0:
        parser.error("--listeners must be at least 1, --processes at least 1, --seconds positive")
    args.systems = [part.strip() for part in args.systems.split(",") if part.strip()]
    if not args.systems or set(args.systems) - {"ours", "baseline"}:
        parser.error("--systems: ours, baseline or ours,baseline")
    harness.exit_cleanly_on_sigterm()
    spaces_listeners.raise_file_limit()
    spaces_listeners.no_decoding()  # the speakers here only send; what they receive is not decoded
    logging.basicConfig(level=logging.ERROR)
    print(f"machine: {cores()}; shared by both servers, this process (the speaker) and the client processes")
    print(
        "ours: `serve` in this file, uvicorn 1 worker, uvloop; bundled plugins; embedded SQLite; "
        '[plugins.spaces] host_addresses = ["127.0.0.1"]; the mix encoded once per tick, the same packets to every listener'
    )
    print("MediaRelay: bench/spaces_baseline.py, the same stack; aiortc MediaRelay, an Opus encoder per listener's sender")
    print(
        f"media: aiortc on 127.0.0.1 only, no STUN; one speaker sending a 440 Hz tone ({PACKETS_PER_SECOND} packets/s); "
        f"listeners receive only, spread over {args.processes} client processes, packets counted without decoding"
    )
    print(
        f"only the server process's CPU is divided by N; the clients compete with it for the same cores "
        f"(they run at nice {args.client_nice}, standing in for other machines)",
        flush=True,
    )
    runs = asyncio.run(run_all(args, steps))
    report(runs, steps, args)
    print(f"\nload average at the end: {'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())}")


if __name__ == "__main__":
    main()
