"""Realtime delivery: latency of a message to one user, and of a broadcast, over 1,000 open websockets.

Run:

    python bench/realtime.py [--clients 1000] [--messages 2000] [--interval-ms 2] [--broadcasts 20]
                             [--client-processes 2] [--signup direct|http] [--by-username]
                             [--compression deflate|none] [--ws auto] [--servers 1|2] [--redis URL]

Starts the full application under uvicorn in a subprocess
(this file with ``serve``, ``bench/realtime_server.py``: ``kernel.create_app`` with every bundled plugin
and the bench-only plugin ``bench/realtime_plugin.py``, embedded SQLite in a
temporary folder, realtime rate limits raised to 100,000 so that the limiter
is not what is measured), then:

1. creates ``--clients`` accounts with an API token each. ``--signup direct``
   (the default) has the server process create them through the kernel's
   identity service before it listens, sharing one argon2id hash (seconds);
   ``--signup http`` signs each up through ``POST /api/auth/signup`` and
   ``POST /api/auth/tokens`` (one argon2id hash each, about 130 ms of CPU:
   minutes for 1,000);
2. opens one websocket per account to ``/ws`` with ``Authorization: Bearer``
   from ``--client-processes`` separate client processes (asyncio on uvloop,
   the ``websockets`` library), each waiting for ``kernel.hello`` and asking
   ``bench.whoami`` for its user id;
3. one user: a single sender connection sends ``--messages`` ``bench.to_user``
   messages, one every ``--interval-ms`` (paced, to measure latency rather than
   saturation), each to a random other user, after 100 unmeasured warm-up
   messages; the server hands each to ``kernel.realtime.send_to_user``. Latency
   is the receiver's ``time.time_ns()`` minus the sender's, carried in the
   message: one machine, one wall clock, whichever client process the two
   connections are in. Prints p50, p90, p99 and max; the target is p99 <= 10 ms;
4. everyone: the same sender sends ``bench.to_all`` ``--broadcasts`` times, the
   server calling ``kernel.realtime.broadcast``, waiting each time until every
   connection has it; prints p50 and p99 over the rounds of the time until the
   last connection got it, and of the median connection's time.

Alongside, it prints the CPU time (from /proc) the server and the client
processes spent: idle for 2 s with every connection open, per message to one
user, and per broadcast round. The clients share the machine's cores with the
server, which the output says, with the load average at start.
Everything is closed and removed at the end, and the server and client
processes are killed whatever happens.

``--servers 2``: the same over two server processes of one deployment on a
Redis bus (a ``redis-server`` this run starts on a free port, so that its
counts are this run's alone, unless ``--redis`` names one), sharing the
SQLite file and secret key. The sender's socket is on the first process and
every other user's on the second, so each message to one user, and each
broadcast, crosses processes through Redis; the target is the same p99 <=
10 ms. It also reports how many PUBLISH commands Redis ran per message.
Measured 2026-12-07 (2 cores, load average 2.6): p99 1.75 ms, 1.00 PUBLISH
per message; the one-process run right after, p99 3.2 ms (docs/realtime.md).

Ends with ``RESULT <metric> <value> target <op> <value> met|NOT met`` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import harness
import httpx
from harness import BENCH_DIR, Server
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TARGET_P99_MS = 10.0
PASSWORD = "a long bench password"
WARMUP_MESSAGES = 100
CONNECT_CONCURRENCY = 32  # per client process
COMMAND_TIMEOUT = 300.0
DELIVERY_TIMEOUT = 10.0  # after the last send, for stragglers
IDLE_SECONDS = 2.0  # every connection open, nothing sent: the CPU baseline


# Statistics ------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def ms(nanoseconds: float) -> float:
    return nanoseconds / 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; NaN elsewhere), 10 ms resolution."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@dataclass
class CpuMeter:
    """CPU seconds the server processes (summed) and the client processes spent between ``start`` and ``stop``."""

    server_pids: list[int]
    client_pids: list[int]
    server: float = 0.0
    clients: float = 0.0

    def start(self) -> None:
        self.server = -sum(cpu_seconds(pid) for pid in self.server_pids)
        self.clients = -sum(cpu_seconds(pid) for pid in self.client_pids)

    def stop(self) -> CpuMeter:
        self.server += sum(cpu_seconds(pid) for pid in self.server_pids)
        self.clients += sum(cpu_seconds(pid) for pid in self.client_pids)
        return self


# The client processes ------------------------------------------------------------------


@dataclass
class Client:
    """One open websocket of one account, to the server at ``url``."""

    username: str
    token: str
    url: str
    ws: ClientConnection | None = None
    user_id: int | None = None
    reader: asyncio.Task[None] | None = None


@dataclass
class Worker:
    """A client process: its share of the connections, and what they received."""

    pipe: Pipe
    url: str
    clients: list[Client]
    compression: str | None
    closing: bool = False
    delivered: list[int] = field(default_factory=list)  # latencies, ns
    expect_delivered: float = math.inf
    delivered_enough: asyncio.Event = field(default_factory=asyncio.Event)
    broadcasts: dict[int, list[int]] = field(default_factory=dict)  # seq -> latencies, ns
    broadcast_done: dict[int, asyncio.Event] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    closed_early: list[str] = field(default_factory=list)
    other_messages: int = 0

    # Connecting ----------------------------------------------------------------------

    async def open_all(self) -> dict[str, Any]:
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
        started = time.monotonic()

        async def open_one(client: Client) -> None:
            async with limit:
                await self.open(client)

        await asyncio.gather(*(open_one(client) for client in self.clients))
        ws = self.clients[0].ws
        assert ws is not None
        extensions = [type(extension).__name__ for extension in ws.protocol.extensions]
        return {
            "seconds": time.monotonic() - started,
            "users": [(client.username, client.user_id) for client in self.clients],
            "extensions": extensions,
        }

    async def open(self, client: Client) -> None:
        ws = await connect(
            client.url,
            additional_headers={"Authorization": f"Bearer {client.token}"},
            compression=self.compression,
            proxy=None,
            open_timeout=120,
            ping_interval=None,  # no keep-alive pings of our own mid-measurement
            close_timeout=10,
        )
        client.ws = ws
        hello = await next_message(ws)
        if hello.get("type") != "kernel.hello" or hello["user"]["username"] != client.username:
            raise RuntimeError(f"@{client.username} was greeted with {hello}")
        await ws.send(json.dumps({"type": "bench.whoami", "id": "whoami"}))
        reply = await next_message(ws)
        if reply.get("type") != "reply" or reply.get("ref") != "whoami":
            raise RuntimeError(f"@{client.username}: bench.whoami was answered {reply}")
        client.user_id = reply["id"]
        client.reader = asyncio.create_task(self.read(client))

    # Receiving -----------------------------------------------------------------------

    async def read(self, client: Client) -> None:
        ws = client.ws
        assert ws is not None
        try:
            async for raw in ws:
                now = time.time_ns()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "bench.delivered":
                    self.delivered.append(now - message["sent_at"])
                    if len(self.delivered) >= self.expect_delivered:
                        self.delivered_enough.set()
                elif kind == "bench.broadcast":
                    seq = message["seq"]
                    got = self.broadcasts.setdefault(seq, [])
                    got.append(now - message["sent_at"])
                    if len(got) >= len(self.clients):
                        self.broadcast_done.setdefault(seq, asyncio.Event()).set()
                elif kind == "error":
                    self.errors.append(message)
                elif kind != "kernel.heartbeat":
                    self.other_messages += 1
        except ConnectionClosed:
            pass
        if not self.closing:
            self.closed_early.append(f"@{client.username}: {ws.close_code} {ws.close_reason}")

    # Commands from the coordinator ------------------------------------------------------

    async def send_to_user(self, sender: int, targets: list[int | str], interval_ms: float) -> dict[str, Any]:
        """Send ``bench.to_user`` to each target in turn, one every ``interval_ms``, on an absolute schedule."""
        ws = self.clients[sender].ws
        assert ws is not None
        interval = interval_ms / 1000
        started = time.monotonic()
        for seq, target in enumerate(targets):
            delay = started + seq * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send(json.dumps({"type": "bench.to_user", "to": target, "seq": seq, "sent_at": time.time_ns()}))
        return {"sent": len(targets), "seconds": time.monotonic() - started}

    async def collect_deliveries(self, count: int, timeout: float) -> dict[str, Any]:
        """Wait until ``count`` deliveries arrived here (or ``timeout``), hand their latencies over and start afresh."""
        self.expect_delivered = count
        if len(self.delivered) < count:
            self.delivered_enough.clear()
            try:
                await asyncio.wait_for(self.delivered_enough.wait(), timeout)
            except TimeoutError:
                pass
        latencies, self.delivered = self.delivered, []
        self.expect_delivered = math.inf
        return {"latencies": latencies, "errors": self.take_errors()}

    async def send_to_all(self, sender: int, seq: int) -> dict[str, Any]:
        ws = self.clients[sender].ws
        assert ws is not None
        await ws.send(json.dumps({"type": "bench.to_all", "seq": seq, "sent_at": time.time_ns()}))
        return {}

    async def collect_broadcast(self, seq: int, timeout: float) -> dict[str, Any]:
        """Wait until every connection here has broadcast ``seq`` (or ``timeout``); its latencies."""
        done = self.broadcast_done.setdefault(seq, asyncio.Event())
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            pass
        self.broadcast_done.pop(seq, None)
        return {"latencies": self.broadcasts.pop(seq, []), "errors": self.take_errors()}

    def take_errors(self) -> list[dict[str, Any]]:
        errors, self.errors = self.errors, []
        return errors

    async def close_all(self) -> dict[str, Any]:
        self.closing = True
        started = time.monotonic()
        await asyncio.gather(*(client.ws.close() for client in self.clients if client.ws is not None), return_exceptions=True)
        await asyncio.gather(*(client.reader for client in self.clients if client.reader is not None), return_exceptions=True)
        return {"seconds": time.monotonic() - started, "closed_early": self.closed_early, "other_messages": self.other_messages}

    # The loop ------------------------------------------------------------------------

    async def serve(self) -> None:
        """Open every connection, then run the coordinator's commands until told to close."""
        try:
            self.pipe.send(("ok", await self.open_all()))
            while True:
                command, arguments = await asyncio.to_thread(self.pipe.recv)
                if command == "close":
                    self.pipe.send(("ok", await self.close_all()))
                    return
                result = await getattr(self, command)(**arguments)
                if self.closed_early:
                    raise RuntimeError(f"{len(self.closed_early)} connections closed by the server: {self.closed_early[:5]}")
                self.pipe.send(("ok", result))
        except Exception:
            self.pipe.send(("error", traceback.format_exc()))


async def next_message(ws: ClientConnection, timeout: float = 60) -> dict[str, Any]:
    """The next message other than a heartbeat (one may come at any moment)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message.get("type") != "kernel.heartbeat":
            return message


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def worker_main(pipe: Pipe, url: str, accounts: list[dict[str, Any]], compression: str | None) -> None:
    """The entry point of a client process."""
    import uvloop

    raise_file_limit()
    clients = [Client(account["username"], account["token"], account.get("url", url)) for account in accounts]
    worker = Worker(pipe, url, clients, compression)
    uvloop.run(worker.serve())


# The coordinator -------------------------------------------------------------------


class RealtimeServer(Server):
    """``bench/realtime_server.py`` in a subprocess (see :class:`harness.Server`)."""

    def __init__(self, log_path: Path, extra_args: list[str]) -> None:
        super().__init__("realtime", log_path, "/readyz")
        self.command = [sys.executable, str(BENCH_DIR / "realtime.py"), "serve", "--port", str(self.port), *extra_args]


class RedisServer:
    """``redis-server`` on a free loopback port, nothing saved, for the run (its counts are the run's alone)."""

    def __init__(self) -> None:
        self.port = harness.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisServer:
        server = shutil.which("redis-server")
        if server is None:
            raise SystemExit("--servers 2 needs redis-server (apt-get install redis-server) or --redis URL")
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redis_publishes(self.url, quiet=True) >= 0:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def redis_publishes(url: str, quiet: bool = False) -> int:
    """How many PUBLISH commands the Redis at ``url`` has run (``INFO commandstats``); -1 when it does not answer."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
    except redis.RedisError:
        if quiet:
            return -1
        raise
    return int(stats.get("cmdstat_publish", {}).get("calls", 0))


@dataclass
class ClientProcess:
    process: BaseProcess
    pipe: Pipe
    users: list[tuple[str, int]] = field(default_factory=list)


def ask(client: ClientProcess, command: str, **arguments: Any) -> dict[str, Any]:
    """Run ``command`` with ``arguments`` in a client process and return its answer."""
    client.pipe.send((command, arguments))
    return answer(client, command)


def answer(client: ClientProcess, what: str, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
    """The client process's answer, or RuntimeError if it failed, died or took longer than ``timeout``."""
    deadline = time.monotonic() + timeout
    while not client.pipe.poll(0.5):
        if not client.process.is_alive():
            raise RuntimeError(f"client process {client.process.name} died during {what} (exit code {client.process.exitcode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"client process {client.process.name} did not answer {what} in {timeout:.0f} s")
    status, result = client.pipe.recv()
    if status != "ok":
        raise RuntimeError(f"client process {client.process.name} failed during {what}:\n{result}")
    return result


def start_clients(url: str, accounts: list[dict[str, Any]], processes: int, compression: str | None) -> list[ClientProcess]:
    context = multiprocessing.get_context("spawn")
    started = []
    for number in range(processes):
        share = accounts[number::processes]
        ours, theirs = context.Pipe()
        process = context.Process(
            target=worker_main, args=(theirs, url, share, compression), name=f"clients-{number}", daemon=True
        )
        process.start()
        theirs.close()
        started.append(ClientProcess(process, ours))
    return started


def stop_clients(clients: list[ClientProcess]) -> None:
    for client in clients:
        if client.process.is_alive():
            client.process.kill()
        client.process.join(5)
        client.pipe.close()


async def sign_up_over_http(base_url: str, usernames: list[str], concurrency: int = 4) -> list[dict[str, Any]]:
    """Sign each user up and mint a token, through the JSON API."""
    limit = asyncio.Semaphore(concurrency)

    async def one(username: str) -> dict[str, Any]:
        async with limit, httpx.AsyncClient(base_url=base_url, timeout=120, trust_env=False) as http:
            signup = await http.post("/api/auth/signup", json={"username": username, "password": PASSWORD})
            signup.raise_for_status()
            created = await http.post(
                "/api/auth/tokens", json={"name": "bench"}, headers={"X-CSRF-Token": signup.headers["X-CSRF-Token"]}
            )
            created.raise_for_status()
            return {"username": username, "token": created.json()["token"]}

    return list(await asyncio.gather(*(one(username) for username in usernames)))


def usernames(count: int) -> list[str]:
    return [f"rt{number:05d}" for number in range(count)]  # as bench/realtime_server.py names them


@dataclass
class Figures:
    """What one run measured."""

    setup: list[str] = field(default_factory=list)
    to_user_ns: list[int] = field(default_factory=list)
    to_user_sent: int = 0
    to_user_seconds: float = 0.0
    broadcast_last_ns: list[int] = field(default_factory=list)
    broadcast_median_ns: list[float] = field(default_factory=list)
    broadcast_missing: int = 0
    idle_cpu: CpuMeter | None = None
    idle_seconds: float = 0.0
    to_user_cpu: CpuMeter | None = None
    broadcast_cpu: CpuMeter | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    to_user_publishes: int = -1  # --servers 2: Redis PUBLISH commands during the measured messages to one user


def measure_to_user(
    clients: list[ClientProcess], args: argparse.Namespace, rng: random.Random, count: int, figures: Figures | None
) -> None:
    """``count`` paced ``bench.to_user`` messages from client 0 of process 0 to random others; latencies into ``figures``."""
    owner = {user_id: index for index, client in enumerate(clients) for _, user_id in client.users}
    sender_name, sender_id = clients[0].users[0]
    others = [(name, user_id) for client in clients for name, user_id in client.users if user_id != sender_id]
    picked = [rng.choice(others) for _ in range(count)]
    expected = [0] * len(clients)
    for _, user_id in picked:
        expected[owner[user_id]] += 1
    targets: list[int | str] = [name if args.by_username else user_id for name, user_id in picked]
    sent = ask(clients[0], "send_to_user", sender=0, targets=targets, interval_ms=args.interval_ms)
    latencies: list[int] = []
    errors: list[dict[str, Any]] = []
    for client, count_here in zip(clients, expected, strict=True):
        result = ask(client, "collect_deliveries", count=count_here, timeout=DELIVERY_TIMEOUT)
        latencies += result["latencies"]
        errors += result["errors"]
    if figures is not None:
        figures.to_user_ns = latencies
        figures.to_user_sent = sent["sent"]
        figures.to_user_seconds = sent["seconds"]
        figures.errors += errors
    elif errors:
        raise RuntimeError(f"errors during the warm-up: {errors[:5]}")


def measure_broadcasts(clients: list[ClientProcess], args: argparse.Namespace, total: int, figures: Figures) -> None:
    """``--broadcasts`` rounds of ``bench.to_all``, each waited for at every connection."""
    for seq in range(args.broadcasts):
        ask(clients[0], "send_to_all", sender=0, seq=seq)
        latencies: list[int] = []
        for client in clients:
            result = ask(client, "collect_broadcast", seq=seq, timeout=DELIVERY_TIMEOUT)
            latencies += result["latencies"]
            figures.errors += result["errors"]
        figures.broadcast_missing += total - len(latencies)
        if latencies:
            figures.broadcast_last_ns.append(max(latencies))
            figures.broadcast_median_ns.append(statistics.median(latencies))
        time.sleep(args.broadcast_pause_ms / 1000)


def run(args: argparse.Namespace) -> Figures:
    figures = Figures()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="everything-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        users_file = workdir / "users.json"
        server_args = ["--data-dir", str(workdir / "data"), "--ws", args.ws]
        redis_url = ""
        if args.servers > 1:
            redis_url = args.redis or stack.enter_context(RedisServer()).url
            server_args += ["--bus-url", redis_url, "--secret-key", secrets.token_urlsafe(32)]
        clients: list[ClientProcess] = []
        log_paths = [workdir / f"server-{number}.log" for number in range(args.servers)]
        try:
            started = time.monotonic()
            first_args = [*server_args]
            if args.signup == "direct":
                first_args += ["--create-users", str(args.clients), "--users-file", str(users_file)]
            # The first process creates the accounts before it listens; the others join its database.
            servers = [stack.enter_context(RealtimeServer(log_paths[0], first_args))]
            servers += [stack.enter_context(RealtimeServer(path, server_args)) for path in log_paths[1:]]
            server = servers[0]
            if args.signup == "direct":
                accounts = json.loads(users_file.read_text())
                how = "created in the server process before it listened (identity service, one shared argon2id hash)"
            else:
                accounts = asyncio.run(sign_up_over_http(server.url, usernames(args.clients)))
                how = "signed up over HTTP (POST /api/auth/signup, then POST /api/auth/tokens)"
            figures.setup.append(f"accounts: {len(accounts):,} {how}: {time.monotonic() - started:.1f} s with server start")
            if args.servers > 1:
                # The sender on the first process, everyone else on the last: every message crosses.
                for index, account in enumerate(accounts):
                    account["url"] = ws_url(servers[0 if index == 0 else -1].url)
                figures.setup.append(
                    f"servers: {args.servers} processes on the Redis bus {redis_url}; the sender on the first, "
                    f"the {len(accounts) - 1:,} others on the last"
                )

            started = time.monotonic()
            clients = start_clients(
                ws_url(server.url), accounts, args.client_processes, None if args.compression == "none" else args.compression
            )
            opened = [answer(client, "opening connections") for client in clients]
            for client, result in zip(clients, opened, strict=True):
                client.users = [tuple(user) for user in result["users"]]  # type: ignore[misc]
            connected = sum(len(client.users) for client in clients)
            seconds = time.monotonic() - started
            figures.setup.append(
                f"websockets: {connected:,} open and greeted (kernel.hello, then bench.whoami) in {seconds:.1f} s "
                f"({connected / seconds:,.0f}/s, client processes started included); "
                f"extensions negotiated: {', '.join(opened[0]['extensions']) or 'none'}"
            )

            server_pids = [started_server.process.pid for started_server in servers if started_server.process is not None]
            pids = [client.process.pid for client in clients if client.process.pid is not None]
            figures.idle_cpu, figures.idle_seconds = CpuMeter(server_pids, pids), IDLE_SECONDS
            figures.idle_cpu.start()
            time.sleep(IDLE_SECONDS)
            figures.idle_cpu.stop()
            measure_to_user(clients, args, rng, WARMUP_MESSAGES, None)
            figures.to_user_cpu = CpuMeter(server_pids, pids)
            figures.to_user_cpu.start()
            published = redis_publishes(redis_url) if args.servers > 1 else 0
            measure_to_user(clients, args, rng, args.messages, figures)
            if args.servers > 1:
                figures.to_user_publishes = redis_publishes(redis_url) - published
            figures.to_user_cpu.stop()
            figures.broadcast_cpu = CpuMeter(server_pids, pids)
            figures.broadcast_cpu.start()
            measure_broadcasts(clients, args, connected, figures)
            figures.broadcast_cpu.stop()

            closed = [ask(client, "close") for client in clients]
            figures.setup.append(f"closing: every client closed cleanly in {max(result['seconds'] for result in closed):.2f} s")
        except BaseException:
            for log_path in log_paths:
                if log_path.exists():
                    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
                    print(f"\n{log_path.name}, last lines:\n{tail}", file=sys.stderr)
            raise
        finally:
            stop_clients(clients)
            stack.close()  # the servers stop before their logs are read
        for log_path in log_paths:
            figures.setup.append(f"{log_path.name}: {server_log_summary(log_path)}")
    return figures


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://") + "/ws"


def server_log_summary(path: Path) -> str:
    levels: dict[str, int] = {}
    messages: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            levels["non-JSON"] = levels.get("non-JSON", 0) + 1
            continue
        level = entry.get("level", "?")
        levels[level] = levels.get(level, 0) + 1
        if level in ("warning", "error", "critical"):
            messages.append(entry.get("message", ""))
    counts = ", ".join(f"{count} {level}" for level, count in sorted(levels.items())) or "empty"
    worst = f"; first warnings: {messages[:3]}" if messages else ""
    return counts + worst


# Reporting ------------------------------------------------------------------------


def cores() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", load average {:.2f} {:.2f} {:.2f} at start".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} cores ({usable} usable by this process){load}"


def ws_implementation(name: str) -> str:
    """What uvicorn's ``ws`` setting resolves to here ("auto" picks by what is installed)."""
    if name != "auto":
        return name
    try:
        from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
    except ImportError:
        return name
    return f"auto, i.e. {getattr(AutoWebSocketsProtocol, '__name__', AutoWebSocketsProtocol)}"


def print_setup(args: argparse.Namespace) -> None:
    print(f"machine: {cores()}, shared by the server process and {args.client_processes} client process(es);")
    print("         the clients' CPU time competes with the server's, so these are upper bounds on latency.")
    print(
        f"server: bench/realtime_server.py, uvicorn 1 worker, loop=uvloop, http=httptools, ws={ws_implementation(args.ws)}; "
        "create_app with the bundled plugins + bench (bench/realtime_plugin.py); "
        "embedded SQLite; realtime.messages_per_second = burst = 100000"
    )
    print(
        f"clients: {args.clients:,} websockets (Authorization: Bearer <token>), websockets library on uvloop, "
        f"{args.client_processes} process(es), compression={args.compression}"
    )
    print(
        "latency: receiver's time.time_ns() - sender's time.time_ns() carried in the message "
        "(one machine, one wall clock across processes)"
    )


def report(figures: Figures, args: argparse.Namespace) -> None:
    print()
    for line in figures.setup:
        print(line)
    if figures.idle_cpu:
        idle = figures.idle_cpu
        print(
            f"idle, every connection open: server {idle.server / figures.idle_seconds:.1%} of a core, "
            f"clients {idle.clients / figures.idle_seconds:.1%} (over {figures.idle_seconds:g} s)"
        )
    print()
    addressed = "username (server looks it up in a worker thread)" if args.by_username else "user id"
    print(
        f"to one user: bench.to_user from one connection to a random other user, addressed by {addressed}, "
        f"one every {args.interval_ms:g} ms ({figures.to_user_sent:,} sent in {figures.to_user_seconds:.1f} s "
        f"after {WARMUP_MESSAGES} warm-up)"
    )
    latencies = sorted(figures.to_user_ns)
    lost = figures.to_user_sent - len(latencies)
    p99 = ms(percentile(latencies, 99))
    verdict = "met" if p99 <= TARGET_P99_MS and not lost else "NOT met"
    print(
        f"  received {len(latencies):,}{f'  !! {lost} never arrived' if lost else ''}   "
        f"p50 {ms(percentile(latencies, 50)):6.2f} ms   p90 {ms(percentile(latencies, 90)):6.2f} ms   "
        f"p99 {p99:6.2f} ms   max {ms(latencies[-1]) if latencies else float('nan'):6.2f} ms   "
        f"target p99 <= {TARGET_P99_MS:g} ms: {verdict}"
    )
    if figures.to_user_cpu and figures.to_user_sent:
        cpu = figures.to_user_cpu
        print(
            f"  CPU during the phase: server {cpu.server * 1e6 / figures.to_user_sent:,.0f} µs per message, "
            f"clients {cpu.clients * 1e6 / figures.to_user_sent:,.0f} µs per message (CPU time from /proc, 10 ms ticks)"
        )
    print()
    last = sorted(figures.broadcast_last_ns)
    median = sorted(figures.broadcast_median_ns)
    print(f"to everyone: bench.to_all from one connection to all {args.clients:,}, {len(last)} rounds, each waited for")
    print(
        f"  last connection got it      p50 {ms(percentile(last, 50)):6.2f} ms   p99 {ms(percentile(last, 99)):6.2f} ms   "
        f"max {ms(last[-1]) if last else float('nan'):6.2f} ms"
    )
    print(f"  median connection got it    p50 {ms(percentile(median, 50)):6.2f} ms   p99 {ms(percentile(median, 99)):6.2f} ms")
    if figures.broadcast_cpu and last:
        cpu = figures.broadcast_cpu
        print(
            f"  CPU per round: server {cpu.server * 1e3 / len(last):.1f} ms "
            f"({cpu.server * 1e6 / len(last) / args.clients:.0f} µs per connection), clients {cpu.clients * 1e3 / len(last):.1f} ms"
        )
    if figures.broadcast_missing:
        print(f"  !! {figures.broadcast_missing} broadcast copies never arrived")
    if figures.errors:
        print(f"\n!! {len(figures.errors)} error messages from the server, first: {figures.errors[:3]}")
    if figures.to_user_publishes >= 0 and figures.to_user_sent:
        print(
            f"\nredis: {figures.to_user_publishes:,} PUBLISH commands for {figures.to_user_sent:,} messages to one user "
            f"({figures.to_user_publishes / figures.to_user_sent:.2f} each: one to the user's channel, which only the process holding them receives)"
        )
    metric = "cross_process_to_user_p99_ms" if args.servers > 1 else "to_user_p99_ms"
    print()
    print(f"RESULT {metric} {p99:.2f} target <= {TARGET_P99_MS:g} {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--clients", type=int, default=1000, help="accounts, one websocket each (default %(default)s)")
    add("--messages", type=int, default=2000, help="measured bench.to_user messages (default %(default)s)")
    add("--interval-ms", type=float, default=2.0, help="between two bench.to_user sends (default %(default)s)")
    add("--broadcasts", type=int, default=20, help="bench.to_all rounds (default %(default)s)")
    add("--broadcast-pause-ms", type=float, default=100.0, help="pause after each broadcast round (default %(default)s)")
    add("--client-processes", type=int, default=2, help="processes sharing the websockets (default %(default)s)")
    add("--signup", choices=["direct", "http"], default="direct", help="how accounts are made (default %(default)s)")
    add("--by-username", action="store_true", help="address bench.to_user by username instead of user id")
    add(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="offered by the clients, as browsers do (default %(default)s)",
    )
    add("--ws", default="auto", help="uvicorn's websocket implementation (default %(default)s, as `everything serve`)")
    add(
        "--servers",
        type=int,
        choices=[1, 2],
        default=1,
        help="server processes; 2 puts them on a Redis bus (default %(default)s)",
    )
    add(
        "--redis",
        help="with --servers 2: this Redis instead of a redis-server the run starts (its PUBLISH count then includes others')",
    )
    add("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.clients < 2 or args.client_processes < 1 or args.client_processes > args.clients:
        parser.error("need at least 2 clients and between 1 and --clients client processes")
    harness.exit_cleanly_on_sigterm()
    raise_file_limit()
    print_setup(args)
    figures = run(args)
    report(figures, args)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        import realtime_server  # beside this file; only the server process loads the project

        realtime_server.main(sys.argv[2:])
    else:
        main()
