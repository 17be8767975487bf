"""Live quotes: ticks for 100 symbols to 1,000 realtime subscribers; delivered ticks a second and a tick's age on arrival.

Run:

    python bench/quotes.py [--subscribers 1000] [--symbols 100] [--per-subscriber 10] [--seconds 20]
                           [--warmup 3] [--processes 4] [--client-nice 10] [--free-share 0]
                           [--tick-seconds 1] [--compression deflate|none] [--servers 1|2] [--redis URL]

The server, in a subprocess on a free loopback port, is this file with
``serve``: the full application (``kernel.create_app``, every bundled plugin,
embedded SQLite in a temporary folder, the simulated market) under uvicorn
(``bench/serve.py``: one worker, uvloop, httptools), realtime rate limits
raised so that the limiter is not what is measured, ``[plugins.trading]
tick_seconds`` from ``--tick-seconds``. Before it listens it creates
``--subscribers`` accounts, each with an API token (one shared argon2id
hash), and grants ``premium`` (so the feature ``trading.realtime``: real-time
quotes) to all but ``--free-share`` of them, whose ticks are then 15 minutes
delayed (priced for the moment 15 minutes ago, one more pricing pass a
batch). It also adds ``/bench/quotes-stats``: the ticker's batches so far and
how long they took, timed around the provider's pricing of a batch and the
ticker's ``_send`` (the fan-out: building each connection's message and
handing it to ``kernel.realtime.send_to_connection``), without changing them.

The subscribers are spread evenly over ``--processes`` client processes
(``bench/quotes_clients.py``, asyncio on uvloop, the ``websockets``
library, at ``--client-nice``). Each opens ``/ws`` with its token, reads
``kernel.hello`` and sends ``trading.subscribe`` with ``--per-subscriber``
symbols, like a watchlist: subscriber i follows the symbols i·k … i·k+k-1
(mod ``--symbols``) of the simulated market's assets, so their union is
every symbol and each symbol has about N·k/S followers
(``--per-subscriber 100``: every subscriber follows all 100). The server
then sends each socket one ``trading.tick`` ``{at, quotes}`` a tick. After
``--warmup`` seconds every subscriber's counts are reset, and ``--seconds``
later read: the tick messages and quotes received, and for each tick its
age on arrival, the client's ``time.time()`` when ``recv`` returned minus
``at`` (when the batch was priced; one machine, one clock); a gap of more
than 1.5 ticks between two ticks' ``at`` counts as missed batches.

Prints: delivered tick messages a second and quotes a second (summed over
the subscribers), per subscriber ticks a second (min, p50) and whether
every subscriber kept up (at least all but one of the batches the window
held, none missed, no socket closed); the age of a tick p50 / p99 / max (by
tier when both are present); the server's batches a second and its pricing
and fan-out time per batch; the server's CPU in % of one core (from
``/proc/<pid>/stat``, all threads), how long its event loop thread waited
for a CPU (``/proc/<pid>/schedstat``), the client processes' CPU and how
busy the whole machine was, with its cores and load average. No assertions
on speed.

The clients share the machine with the server: they stand in for browsers
elsewhere, so they run at a lower priority and do as little as a client can
(the tick is read as bytes, ``at`` cut out of its fixed prefix and the quotes
counted, no JSON parsing). An age that grows while the server's fan-out
time stays small points at the clients (or the rest of the machine) being
slow to read, not at the server.

The server's ``/bench/quotes-stats`` also wraps each connection's
``websocket.send_text`` to take a tick's age when the server has written it
("age when written"); against the age on arrival it tells the server's
delay from the clients'. These wrappers cost a few µs a message.

Measured on this project's machine (2 cores, shared with the clients),
2026-11-21, a Saturday (stocks stand still, crypto moves; every symbol is
still priced and sent each tick), 1,000 subscribers, 20 s windows:

- default (10 symbols each, all premium, deflate), load average 2.5, after
  ticks to connections following the same symbols at the same tier were
  encoded once and the fan-out yields the event loop: **999 tick
  messages/s, 9,988 quotes/s**; every subscriber 1.00 ticks/s, none
  missed; **age on arrival p50 46 ms, p99 97 ms**, max 106 ms; server
  10.2 % of a core; pricing 8.8 ms and fan-out 65 ms a batch; subscribing
  took 8.4 s. Clients 5 % of a core.
- before that change, at load 7.7 to 8 (the machine busy with other work):
  the same delivery, p99 315 ms, server 13 %, fan-out 82 ms a batch (each
  connection's message was encoded on its own, and the fan-out held the
  event loop, so its whole time was in every tick's age).
- ``--per-subscriber 100`` (100,000 quotes/s wanted), before that change,
  deflate, load 8 to 9: not kept up (0.80 ticks/s each, p99 3.55 s; the
  server at 64 % of a core, fan-out 637 ms a batch); without compression
  (load 12) kept up, p99 976 ms. Per-connection permessage-deflate of
  ~32 KB messages is what tips it over; it cannot be shared between
  connections.

``--servers 2``: two server processes of one deployment on a Redis bus (a
``redis-server`` the run starts on a free port, so that its counts are the
run's alone, unless ``--redis`` names one), sharing the SQLite file; the
client processes alternate between them, so each holds half the
subscribers. Reports the Redis PUBLISH commands (``INFO commandstats``)
over the window per tick batch per server process, target <= 1, as a
``RESULT redis_messages_per_tick_per_process <value> target <= 1 met|NOT met``
line. Each process prices its own subscribers' symbols (the provider
answers every process alike) and delivers to its own sockets directly, so
the figure is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for folder in (str(BENCH_DIR), str(REPO)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import harness  # noqa: E402 - bench/harness.py: servers in subprocesses
import httpx  # noqa: E402
import quotes_clients  # noqa: E402 - bench/quotes_clients.py: the client processes
from harness import Server  # noqa: E402
from realtime import RedisServer, raise_file_limit, redis_publishes  # noqa: E402 - bench/realtime.py
from spaces import (  # noqa: E402 - bench/spaces.py: the measuring and client-process plumbing
    ClientProcess,
    command_all,
    cores,
    loop_run_delay,
    machine_ticks,
    percentile,
    process_cpu_seconds,
    stop_clients,
)

from plugins.trading.assets import ASSETS  # noqa: E402
from plugins.trading.service import TRADING  # noqa: E402

PREFIX = "quo"
SETTLE_SECONDS = 1.0


# The server process -------------------------------------------------------------------------------


def serve_main(argv: list[str]) -> None:
    """``python bench/quotes.py serve --port P --data-dir D --subscribers N --free N --tick-seconds T --users-file F``."""
    import serve as bench_serve  # bench/serve.py: how every benchmark runs uvicorn
    from starlette.routing import Route

    parser = argparse.ArgumentParser(prog="bench/quotes.py serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--subscribers", type=int, required=True)
    parser.add_argument("--free", type=int, default=0, help="how many of them (the last) stay on the free tier")
    parser.add_argument("--tick-seconds", type=float, default=1.0)
    parser.add_argument("--users-file", type=Path, required=True)
    parser.add_argument("--bus-url", help="bus.url: one process of a deployment on this Redis")
    parser.add_argument("--secret-key", help="secret_key, the same in every process (with --bus-url)")
    parser.add_argument("--join", action="store_true", help="another process of the deployment: create no accounts")
    args = parser.parse_args(argv)
    raise_file_limit()
    overrides = {"bus": {"url": args.bus_url}, "secret_key": args.secret_key} if args.bus_url else {}
    app = bench_serve.plugin_app(args.data_dir, "trading", {"tick_seconds": args.tick_seconds}, **overrides)
    kernel = app.state.kernel
    accounts = []
    for number in range(0 if args.join else args.subscribers):
        user, token = bench_serve.account(kernel, f"{PREFIX}{number:05d}")
        premium = number < args.subscribers - args.free
        if premium:
            kernel.entitlements.grant(user, "premium", source="operator", reference="bench/quotes.py")
        accounts.append({"token": token, "premium": premium})
    if not args.join:
        args.users_file.write_text(json.dumps(accounts))
    app.router.routes.insert(0, Route("/bench/quotes-stats", timed_ticker(TRADING.of(kernel).ticker, kernel.realtime)))
    bench_serve.run(app, args.port)


def timed_ticker(ticker: Any, hub: Any) -> Any:
    """Time the ticker's batches from outside (its provider's pricing, and its ``_send``), and each tick's age when
    a connection's writer hands it to the websocket (``send_text`` returned: the frame is with the transport);
    return ``GET /bench/quotes-stats``: the batches so far and the time they took (sums and maxima, ms), and the
    written ages since the last look."""
    from starlette.responses import JSONResponse

    stats = {"batches": 0, "send_ms": 0.0, "send_ms_max": 0.0, "priced": 0, "price_ms": 0.0, "price_ms_max": 0.0}
    written: list[float] = []  # ms from a tick's ``at`` to its send_text returning, since the last look
    prefix = '{"type":"trading.tick","at":'
    add = hub.add

    def add_timed(connection: Any) -> None:
        send_text = connection.websocket.send_text

        async def timed_send_text(text: str) -> None:
            await send_text(text)
            if text.startswith(prefix):
                written.append(time.time() * 1000 - int(text[len(prefix) : text.index(",", len(prefix))]))

        connection.websocket.send_text = timed_send_text
        add(connection)

    hub.add = add_timed
    send, market = ticker._send, ticker.quotes.market
    price = getattr(market, "_quotes", None)  # the simulated market's pricing of one batch, run in a thread

    async def timed_send(batch: list[Any]) -> None:
        started = time.perf_counter()
        try:
            await send(batch)
        finally:
            took = 1000 * (time.perf_counter() - started)
            stats["batches"] += 1
            stats["send_ms"] += took
            stats["send_ms_max"] = max(stats["send_ms_max"], took)

    def timed_price(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return price(*args)  # type: ignore[misc]
        finally:
            took = 1000 * (time.perf_counter() - started)
            stats["priced"] += 1
            stats["price_ms"] += took
            stats["price_ms_max"] = max(stats["price_ms_max"], took)

    ticker._send = timed_send
    if price is not None:
        market._quotes = timed_price

    async def endpoint(request: Any) -> Any:
        answer = {**stats, "written_ms": sorted(written)}
        stats["send_ms_max"] = stats["price_ms_max"] = 0.0  # maxima since the last look
        written.clear()
        return JSONResponse(answer)

    return endpoint


class QuotesServer(Server):
    """This file's ``serve`` in a subprocess (see :class:`harness.Server`)."""

    def __init__(
        self, log_path: Path, data_dir: Path, users_file: Path, args: argparse.Namespace, extra: list[str] | None = None
    ) -> None:
        super().__init__("quotes", log_path, "/readyz")
        self.command = [
            sys.executable, str(Path(__file__).resolve()), "serve", "--port", str(self.port),
            "--data-dir", str(data_dir), "--subscribers", str(args.subscribers), "--free", str(args.free),
            "--tick-seconds", str(args.tick_seconds), "--users-file", str(users_file), *(extra or []),
        ]  # fmt: skip


async def server_stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        return (await client.get(url + "/bench/quotes-stats")).json()


# Client processes -----------------------------------------------------------------------------------


def start_clients(count: int, nice: int) -> list[ClientProcess]:
    context = multiprocessing.get_context("spawn")
    started = []
    for number in range(count):
        ours, theirs = context.Pipe()
        process = context.Process(target=quotes_clients.main, args=(theirs, nice), name=f"subscribers-{number}", daemon=True)
        process.start()
        theirs.close()
        started.append(ClientProcess(process, ours))
    return started


def watchlist(index: int, symbols: list[str], per_subscriber: int) -> list[str]:
    """Subscriber ``index``'s symbols: ``per_subscriber`` consecutive ones from index·k on, wrapping round."""
    start = index * per_subscriber
    return [symbols[(start + offset) % len(symbols)] for offset in range(per_subscriber)]


# Measuring -------------------------------------------------------------------------------------------


@dataclass
class Window:
    seconds: float = 0.0
    tick_seconds: float = 1.0
    server_cpu: float = 0.0
    loop_waiting: float = float("nan")
    machine_busy: float = float("nan")
    clients_cpu: float = 0.0
    batches: int = 0
    batches_per_second: float = float("nan")
    send_ms_mean: float = float("nan")
    send_ms_max: float = float("nan")
    price_ms_mean: float = float("nan")
    price_ms_max: float = float("nan")
    written_ms: list[float] = field(default_factory=list)  # server side: a tick's age when handed to the socket
    ticks: list[int] = field(default_factory=list)  # per subscriber
    quotes: list[int] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    realtime: list[bool] = field(default_factory=list)
    ages: dict[bool, list[float]] = field(default_factory=lambda: {True: [], False: []})  # by tier: realtime or not
    closed: list[str] = field(default_factory=list)
    # --servers 2: PUBLISH commands Redis ran over the window, and the tick batches every server process sent meanwhile.
    redis_publishes: int = -1
    batches_all_servers: int = 0

    @property
    def expected(self) -> float:
        return self.seconds / self.tick_seconds

    @property
    def kept_up(self) -> list[bool]:
        """Per subscriber: at least all but one of the window's batches, none missed."""
        floor = int(self.expected) - 1
        return [ticks >= floor and not missed for ticks, missed in zip(self.ticks, self.missed, strict=True)]


async def measure(url: str, pid: int, clients: list[ClientProcess], seconds: float, tick_seconds: float) -> Window:
    run = Window(tick_seconds=tick_seconds)
    first_stats = await server_stats(url)
    first_cpu, first_wait, first_machine = process_cpu_seconds(pid), loop_run_delay(pid), machine_ticks()
    first_at = time.monotonic()
    await command_all(clients, "start")
    await asyncio.sleep(seconds)
    answers = await command_all(clients, "stop")
    wall = time.monotonic() - first_at
    last_cpu, last_wait, last_machine = process_cpu_seconds(pid), loop_run_delay(pid), machine_ticks()
    last_stats = await server_stats(url)
    run.seconds = sum(answer["seconds"] for answer in answers) / len(answers)  # each client's own window
    run.server_cpu = (last_cpu - first_cpu) * run.seconds / wall  # scaled to the clients' window
    run.loop_waiting = (last_wait - first_wait) / wall
    run.machine_busy = (last_machine[0] - first_machine[0]) / max(1, last_machine[1] - first_machine[1])
    run.clients_cpu = sum(answer["cpu"] for answer in answers)
    run.batches = last_stats["batches"] - first_stats["batches"]
    if run.batches:
        run.send_ms_mean = (last_stats["send_ms"] - first_stats["send_ms"]) / run.batches
        run.send_ms_max = last_stats["send_ms_max"]
    priced = last_stats["priced"] - first_stats["priced"]
    if priced:
        run.price_ms_mean = (last_stats["price_ms"] - first_stats["price_ms"]) / priced
        run.price_ms_max = last_stats["price_ms_max"]
    run.batches_per_second = run.batches / wall
    run.written_ms = last_stats["written_ms"]
    for answer in answers:
        run.ticks += answer["ticks"]
        run.quotes += answer["quotes"]
        run.missed += answer["missed"]
        run.realtime += answer["realtime"]
        run.closed += answer["closed"]
        for realtime, ages in zip(answer["realtime"], answer["ages"], strict=True):
            run.ages[realtime] += ages
    return run


# Reporting -------------------------------------------------------------------------------------------


def age_line(ages: list[float]) -> str:
    ordered = sorted(ages)
    if not ordered:
        return "no ticks"
    return (
        f"p50 {percentile(ordered, 50):7.1f} ms   p99 {percentile(ordered, 99):7.1f} ms   max {ordered[-1]:7.1f} ms"
        f"   ({len(ordered):,} ticks)"
    )


def report(run: Window, args: argparse.Namespace) -> None:
    n = len(run.ticks)
    rates = sorted(ticks / run.seconds for ticks in run.ticks)
    kept = run.kept_up
    print(
        f"\nsummary ({run.seconds:.1f} s window after {args.warmup:g} s warm-up; {n:,} subscribers x {args.per_subscriber} symbols):"
    )
    print(
        f"  delivered        {sum(run.ticks) / run.seconds:10,.0f} tick messages/s   "
        f"{sum(run.quotes) / run.seconds:10,.0f} quotes/s   "
        f"(ideal {n / args.tick_seconds:,.0f} and {n * args.per_subscriber / args.tick_seconds:,.0f})"
    )
    print(
        f"  per subscriber   ticks/s min {rates[0]:.2f}  p50 {percentile(rates, 50):.2f}  max {rates[-1]:.2f}"
        f"   (one batch every {args.tick_seconds:g} s: {1 / args.tick_seconds:.2f})"
    )
    verdict = "yes" if all(kept) and not run.closed else "NO"
    print(
        f"  every subscriber kept up (>= {int(run.expected) - 1} of ~{run.expected:.1f} batches, none missed): {verdict}"
        f"   ({sum(kept):,} of {n:,}; {sum(run.missed):,} batches missed in all; {len(run.closed)} sockets closed)"
    )
    tiers = [(tier, ages) for tier, ages in ((True, run.ages[True]), (False, run.ages[False])) if ages]
    for tier, ages in tiers:
        label = "real-time" if tier else "delayed (free)"
        print(f"  age on arrival   {age_line(ages)}   [{label}]" if len(tiers) > 1 else f"  age on arrival   {age_line(ages)}")
    if len(tiers) > 1:
        print(f"  age, all         {age_line(run.ages[True] + run.ages[False])}")
    print(f"  age when written {age_line(run.written_ms)}   [server side: send_text returned, all tiers]")
    print(
        f"  server           {100 * run.server_cpu / run.seconds:5.1f} % of a core; "
        f"{run.batches_per_second:.2f} batches/s; pricing {run.price_ms_mean:.1f} ms mean {run.price_ms_max:.1f} max, "
        f"fan-out {run.send_ms_mean:.1f} ms mean {run.send_ms_max:.1f} max per batch; "
        f"event loop waiting for a CPU {100 * run.loop_waiting:.0f} % of the window"
    )
    print(
        f"  clients          {100 * run.clients_cpu / run.seconds:5.1f} % of a core ({args.processes} processes, nice {args.client_nice}); "
        f"machine {100 * run.machine_busy:.0f} % busy"
    )
    if run.closed:
        print(f"  !! sockets closed by the server: {run.closed[:3]}")
    if run.redis_publishes >= 0:
        per_tick = run.redis_publishes / run.batches_all_servers if run.batches_all_servers else float("nan")
        print(
            f"  redis            {run.redis_publishes:,} PUBLISH commands over the window for {run.batches_all_servers:,} tick batches "
            f"sent by {args.servers} server processes: {per_tick:.2f} per tick per process"
        )
        print(f"\nRESULT redis_messages_per_tick_per_process {per_tick:.2f} target <= 1 {'met' if per_tick <= 1 else 'NOT met'}")


async def run_all(args: argparse.Namespace) -> Window:
    symbols = [asset.symbol for asset in ASSETS[: args.symbols]]
    with tempfile.TemporaryDirectory(prefix="everything-bench-quotes-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        users_file = workdir / "users.json"
        logs = [workdir / f"server-{number}.log" for number in range(args.servers)]
        clients: list[ClientProcess] = []
        try:
            started = time.monotonic()
            redis_url, bus = "", []
            if args.servers > 1:
                redis_url = args.redis or stack.enter_context(RedisServer()).url
                bus = ["--bus-url", redis_url, "--secret-key", secrets.token_urlsafe(32)]
            # The first process creates the accounts before it listens; the others join its database.
            servers = [stack.enter_context(QuotesServer(logs[0], workdir / "data", users_file, args, bus))]
            servers += [
                stack.enter_context(QuotesServer(log, workdir / "data", users_file, args, [*bus, "--join"])) for log in logs[1:]
            ]
            server = servers[0]
            assert server.process is not None
            accounts = json.loads(users_file.read_text())
            clients = start_clients(args.processes, args.client_nice)
            print(
                f"{len(servers)} server process(es) up ({len(accounts):,} accounts, {sum(a['premium'] for a in accounts):,} premium), "
                f"{len(clients)} client processes started, {time.monotonic() - started:.1f} s",
                flush=True,
            )
            payloads = []
            for index in range(len(clients)):
                mine = range(index, len(accounts), len(clients))
                payloads.append(
                    {
                        "url": servers[index % len(servers)].url,  # client processes alternate between the servers
                        "compression": None if args.compression == "none" else args.compression,
                        "tick_ms": 1000 * args.tick_seconds,
                        "subscribers": [
                            {"token": accounts[i]["token"], "symbols": watchlist(i, symbols, args.per_subscriber)} for i in mine
                        ],
                    }
                )
            cpu_before, began = process_cpu_seconds(server.process.pid), time.monotonic()
            answers = await command_all(clients, "subscribe", payloads)
            print(
                f"{sum(a['subscribed'] for a in answers):,} subscribed ({sum(a['realtime'] for a in answers):,} real-time) "
                f"in {time.monotonic() - began:.1f} s, {process_cpu_seconds(server.process.pid) - cpu_before:.1f} server CPU s",
                flush=True,
            )
            await asyncio.sleep(args.warmup)
            batches_before = [(await server_stats(each.url))["batches"] for each in servers]
            published_before = redis_publishes(redis_url) if redis_url else 0
            run = await measure(server.url, server.process.pid, clients, args.seconds, args.tick_seconds)
            if redis_url:
                run.redis_publishes = redis_publishes(redis_url) - published_before
                run.batches_all_servers = sum(
                    [
                        (await server_stats(each.url))["batches"] - before
                        for each, before in zip(servers, batches_before, strict=True)
                    ]
                )
            await command_all(clients, "close")
            await asyncio.sleep(SETTLE_SECONDS)
            return run
        except BaseException:
            for log in logs:
                if log.exists():
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                    print(f"\n{log.name}, last lines:\n{tail}", file=sys.stderr)
            raise
        finally:
            stop_clients(clients)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add(
        "--subscribers", type=int, default=1000, help="realtime subscribers, one account and websocket each (default %(default)s)"
    )
    add(
        "--symbols",
        type=int,
        default=100,
        help="how many of the simulated market's assets they follow in all (default %(default)s)",
    )
    add("--per-subscriber", type=int, default=10, help="symbols each subscriber follows, at most 100 (default %(default)s)")
    add("--seconds", type=float, default=20.0, help="measured seconds (default %(default)s)")
    add("--warmup", type=float, default=3.0, help="seconds between the last subscription and the measure (default %(default)s)")
    add("--processes", type=int, default=4, help="client processes holding the subscribers (default %(default)s)")
    add("--client-nice", type=int, default=10, help="niceness of the client processes (default %(default)s)")
    add(
        "--free-share",
        type=float,
        default=0.0,
        help="share of subscribers left on the free tier, 15 min delayed (default %(default)s)",
    )
    add("--tick-seconds", type=float, default=1.0, help="[plugins.trading] tick_seconds (default %(default)s)")
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
    add(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="the clients' websocket compression (default %(default)s)",
    )
    args = parser.parse_args()
    if not 1 <= args.symbols <= len(ASSETS):
        parser.error(f"--symbols: 1 to {len(ASSETS)}")
    if not 1 <= args.per_subscriber <= min(args.symbols, 100):
        parser.error("--per-subscriber: 1 to --symbols, at most 100 (the plugin's max_subscriptions)")
    if args.subscribers < 1 or args.processes < 1 or args.seconds <= 0 or not 0 <= args.free_share <= 1:
        parser.error("--subscribers and --processes at least 1, --seconds positive, --free-share 0 to 1")
    if args.subscribers * args.per_subscriber < args.symbols:
        print(f"note: {args.subscribers} x {args.per_subscriber} symbols cannot cover all {args.symbols}", flush=True)
    args.processes = min(args.processes, args.subscribers)
    args.free = round(args.subscribers * args.free_share)
    harness.exit_cleanly_on_sigterm()
    raise_file_limit()
    logging.basicConfig(level=logging.ERROR)
    print(f"machine: {cores()}; shared by the server, this process and the client processes")
    print(
        "server: `serve` in this file, uvicorn 1 worker, uvloop; bundled plugins; embedded SQLite; the simulated market; "
        f"tick_seconds {args.tick_seconds:g}; realtime rate limits raised"
    )
    print(
        f"clients: {args.subscribers:,} subscribers ({args.subscribers - args.free:,} premium, {args.free:,} free), "
        f"{args.per_subscriber} symbols each out of {args.symbols}, over {args.processes} client processes (websockets, "
        f"uvloop, compression {args.compression}) at nice {args.client_nice}; they share the cores with the server, so they "
        "stay light: ticks read as bytes, `at` cut from the prefix, quotes counted, no JSON parsing",
        flush=True,
    )
    run = asyncio.run(run_all(args))
    report(run, args)
    print(f"\nload average at the end: {'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())}")


if __name__ == "__main__":
    main()
