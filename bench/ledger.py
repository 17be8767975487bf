"""The ledger: transfers per second with 8 concurrent clients, in this process and over HTTP, then the audit.

Run:

    python bench/ledger.py [--part both|inprocess|http] [--clients 8] [--seconds 5] [--database-url postgresql://...]

``inprocess``: builds a :class:`kernel.app.Kernel` (every bundled plugin) on
an embedded SQLite database in a temporary folder (or the PostgreSQL
database given), makes 100 users with 1,000,000 cents each, then runs
``--clients`` threads that each send transfers of 1 to 500 cents between
random users through ``Ledger.transfer`` for ``--seconds``. Each transfer is
one database transaction of three statements: the transaction's row, which
is also the idempotency check (``INSERT … ON CONFLICT DO NOTHING RETURNING
id``); both guarded balance updates, sent as one batch; both entries, in one
INSERT. Prints transfers per second, latency (p50/p99), this process's CPU
time per transfer, refused transfers, and the audit's verdict and duration
afterwards. The target is at least 1,000 transfers/s in-process on SQLite.

``http``: runs ``everything db upgrade``, then starts a real server,
``everything serve`` (``python -m kernel.cli serve``: one uvicorn process,
every bundled plugin) on a free loopback port with a temporary data folder
(and ``EVERYTHING_DATABASE__URL`` when a PostgreSQL database is given). Signs ``--http-users`` users up
through ``POST /api/auth/signup`` and gives each a bearer token through
``POST /api/auth/tokens``; funds each with 1,000,000 cents from this process
through the same code an operator's credit runs (``Ledger.credit``, from the
``external`` system account) against the same database while the server
runs; then ``--clients`` threads, each with its own keep-alive
``httpx.Client``, POST ``/api/payments/transfers`` (random payer and payee,
1 to 500 cents, a fresh idempotency key each) for ``--seconds`` after one
second of unmeasured warm-up. One request in 50 that succeeded is sent
again with the same key, and the answer must be 200 and the same
transaction. Prints transfers/s, p50/p99 latency of the first sends and the
CPU time per transfer of the server and of the clients; then stops the server,
runs ``everything payments audit`` against its settings and data folder and
prints its verdict, and checks that the users' wallets still sum to what
was funded. The clients share the machine's cores with the server.

With a PostgreSQL database both parts use it (different users); it should
be empty at the start. Exit status 1 if an audit finds a breach, money is
missing, a retry was answered wrong or a request failed.

Measured on this project's machine (2 cores, shared with other work, so
figures move by ±20 %), 8 clients, before → after the three-statement
transfer and the kernel's queue of SQLite writers (kernel/db.py):

- in-process, SQLite: 607–769 → 2,466–2,736 transfers/s (p99 109–232 → 27–29 ms;
  CPU 1.3–1.6 ms → 0.35–0.39 ms per transfer);
- in-process, PostgreSQL 15 on loopback: 382–387 → 1,041–1,172 transfers/s;
- over HTTP, SQLite: 157–198 → 221–282 transfers/s (p50 27–34 ms, p99 43–62 ms);
  PostgreSQL: 165–168 → 252–279. The server spends about 2.4 ms of CPU per
  transfer request, of which the ledger's transaction is about 0.35 ms: the
  rest is the HTTP stack, authentication, the payee look-up and block check,
  and the payee's notification (a write of its own).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kernel.app import Kernel  # noqa: E402
from kernel.errors import ApiError  # noqa: E402
from kernel.settings import Settings  # noqa: E402
from plugins.payments.service import PAYMENTS  # noqa: E402

TARGET_PER_SECOND = 1_000
USERS = 100
FUNDS = 1_000_000
PASSWORD = "benchmark password 1"
HOST = "127.0.0.1"


def build_kernel(data_dir: Path, database_url: str | None) -> Kernel:
    settings = Settings.model_validate({"data_dir": data_dir, "database": {"url": database_url, "auto_migrate": True}})
    kernel = Kernel(settings)
    kernel.upgrade_database()
    return kernel


def percentile(sorted_values: Sequence[float], percent: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * percent / 100))]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float | None:
    """Another process's CPU time so far (Linux), or None where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Tally:
    """What one client thread saw."""

    done: int = 0
    refused: int = 0
    failed: int = 0
    replays_checked: int = 0
    replays_wrong: int = 0
    latencies: list[float] = field(default_factory=list)


def summary(tallies: list[Tally], elapsed: float) -> tuple[float, str]:
    latencies = sorted(latency for tally in tallies for latency in tally.latencies)
    done = sum(tally.done for tally in tallies)
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    return done / elapsed, f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"


# In this process ---------------------------------------------------------------------------


def run_in_process(args: argparse.Namespace, folder: Path) -> bool:
    kernel = build_kernel(folder / "inprocess", args.database_url)
    try:
        ledger = PAYMENTS.of(kernel).ledger
        people = [kernel.identity.create_user(f"payer{number:03d}", "not a real hash", f"Payer {number}").id for number in range(USERS)]
        for person in people:
            ledger.credit(person, FUNDS, "topup")
        tallies = [Tally() for _ in range(args.clients)]
        stop = time.monotonic() + args.seconds

        def client(slot: int) -> None:
            chooser, tally = random.Random(slot), tallies[slot]
            number = 0
            while time.monotonic() < stop:
                payer, payee = chooser.sample(people, 2)
                number += 1
                started = time.perf_counter()
                try:
                    ledger.transfer(payer, payee, chooser.randint(1, 500), "", f"c{slot}-{number}")
                    tally.done += 1
                except ApiError:
                    tally.refused += 1
                tally.latencies.append(time.perf_counter() - started)

        threads = [threading.Thread(target=client, args=(slot,)) for slot in range(args.clients)]
        started, cpu_started = time.monotonic(), cpu_seconds()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed, cpu = time.monotonic() - started, cpu_seconds() - cpu_started
        audit_started = time.monotonic()
        breaches = ledger.audit()
        audit_seconds = time.monotonic() - audit_started
        total = sum(sum(ledger.balances(person).values()) for person in people)
        rate, latency = summary(tallies, elapsed)
        done = sum(tally.done for tally in tallies)
        print(f"\nin this process: {args.clients} client threads calling Ledger.transfer for {elapsed:.1f} s")
        print(f"  {done:,} transfers, {sum(tally.refused for tally in tallies):,} refused; {latency}; CPU {cpu / max(done, 1) * 1e6:.0f} µs per transfer")
        verdict = f"   target >= {TARGET_PER_SECOND:,} in-process on SQLite: {'met' if rate >= TARGET_PER_SECOND else 'NOT met'}"
        print(f"  transfers per second: {rate:,.0f}{'' if args.database_url else verdict}")
        print(f"  audit: {'sound' if not breaches else f'{len(breaches)} breaches'} in {audit_seconds * 1000:.0f} ms")
        for breach in breaches[:10]:
            print(f"    breach: {breach}")
        print(f"  wallets sum to {total:,} of {USERS * FUNDS:,} funded: {'ok' if total == USERS * FUNDS else 'MONEY MISSING'}")
        return not breaches and total == USERS * FUNDS
    finally:
        kernel.db.dispose()


# Over HTTP ---------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def server_env(database_url: str | None) -> dict[str, str]:
    """This environment without any Everything settings, plus the database's when one is given."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVERYTHING_") and key != "DATABASE_URL"}
    if database_url:
        env["EVERYTHING_DATABASE__URL"] = database_url
    return env


def everything(*arguments: str) -> list[str]:
    """The ``everything`` command, run by this interpreter."""
    return [sys.executable, "-m", "kernel.cli", *arguments]


def start_server(workdir: Path, data_dir: Path, env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            everything("serve", "--port", str(port), "--data-dir", str(data_dir)),
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"everything serve exited with {process.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("everything serve did not become ready in 120 s")
        time.sleep(0.1)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sign_up_with_token(url: str, username: str) -> str:
    """Sign ``username`` up and mint a bearer token, as an API client would; returns the token."""
    with httpx.Client(base_url=url, timeout=60) as http:
        response = http.post("/api/auth/signup", json={"username": username, "password": PASSWORD})
        response.raise_for_status()
        minted = http.post("/api/auth/tokens", json={"name": "bench"}, headers={"X-CSRF-Token": response.headers["X-CSRF-Token"]})
        minted.raise_for_status()
        return minted.json()["token"]


def run_over_http(args: argparse.Namespace, folder: Path) -> bool:
    from concurrent.futures import ThreadPoolExecutor

    data_dir = folder / "http-data"
    env = server_env(args.database_url)
    log_path = folder / "server.log"
    started = time.monotonic()
    # As an operator does first (the server migrates only the embedded SQLite by itself).
    subprocess.run(everything("db", "upgrade", "--data-dir", str(data_dir)), cwd=folder, env=env, check=True, capture_output=True)
    process, url = start_server(folder, data_dir, env, log_path)
    try:
        print(f"(http: server {process.pid} ready in {time.monotonic() - started:.1f} s; signing {args.http_users} users up)", file=sys.stderr, flush=True)
        names = [f"http{number:03d}" for number in range(args.http_users)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            tokens = dict(zip(names, pool.map(lambda name: sign_up_with_token(url, name), names), strict=True))
        # Fund them as an operator's credit would: the ledger's own code, on the same database, beside the running server.
        kernel = build_kernel(data_dir, args.database_url)
        try:
            ledger = PAYMENTS.of(kernel).ledger
            ids = {}
            for name in names:
                user = kernel.user(name)
                assert user is not None, name
                ids[name] = user.id
                ledger.credit(user.id, FUNDS, "topup", "benchmark funds")
        finally:
            kernel.db.dispose()

        print(f"(http: users signed up and funded after {time.monotonic() - started:.1f} s; measuring)", file=sys.stderr, flush=True)
        tallies = [Tally() for _ in range(args.clients)]
        warm_until = time.monotonic() + 1.0
        stop = warm_until + args.seconds

        def client(slot: int) -> None:
            chooser, tally = random.Random(1000 + slot), tallies[slot]
            number = 0
            with httpx.Client(base_url=url, timeout=30) as http:
                while (now := time.monotonic()) < stop:
                    payer, payee = chooser.sample(names, 2)
                    number += 1
                    body = {"to": payee, "amount": chooser.randint(1, 500), "idempotency_key": f"h{slot}-{number}"}
                    headers = {"Authorization": f"Bearer {tokens[payer]}"}
                    started = time.perf_counter()
                    try:
                        response = http.post("/api/payments/transfers", json=body, headers=headers)
                    except httpx.HTTPError:
                        tally.failed += 1
                        continue
                    latency = time.perf_counter() - started
                    if now < warm_until:
                        continue
                    if response.status_code == 201:
                        tally.done += 1
                        tally.latencies.append(latency)
                        if number % 50 == 0:  # a client's retry: the same answer, nothing moved twice
                            again = http.post("/api/payments/transfers", json=body, headers=headers)
                            tally.replays_checked += 1
                            if again.status_code != 200 or again.json() != response.json():
                                tally.replays_wrong += 1
                    elif response.status_code == 409:
                        tally.refused += 1
                    else:
                        tally.failed += 1

        threads = [threading.Thread(target=client, args=(slot,)) for slot in range(args.clients)]
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, warm_until - time.monotonic()))
        started, server_cpu_started, cpu_started = time.monotonic(), process_cpu_seconds(process.pid), cpu_seconds()
        for thread in threads:
            thread.join()
        elapsed, server_cpu_ended, clients_cpu = time.monotonic() - started, process_cpu_seconds(process.pid), cpu_seconds() - cpu_started
    finally:
        stop_server(process)

    audit = subprocess.run(everything("payments", "audit", "--data-dir", str(data_dir)), cwd=folder, env=env, capture_output=True, text=True)
    kernel = build_kernel(data_dir, args.database_url)
    try:
        ledger = PAYMENTS.of(kernel).ledger
        total = sum(sum(ledger.balances(user_id).values()) for user_id in ids.values())
    finally:
        kernel.db.dispose()
    rate, latency = summary(tallies, elapsed)
    replays = sum(tally.replays_checked for tally in tallies)
    replays_wrong = sum(tally.replays_wrong for tally in tallies)
    failed = sum(tally.failed for tally in tallies)
    print(f"\nover HTTP: `everything serve` (1 process), {args.clients} httpx clients, {len(names)} users with bearer tokens, {elapsed:.1f} s after 1 s warm-up")
    print(f"  {sum(tally.done for tally in tallies):,} transfers (201), {sum(tally.refused for tally in tallies):,} refused (409), {failed:,} failed; {latency}")
    print(f"  transfers per second: {rate:,.0f}")
    done = max(1, sum(tally.done for tally in tallies))
    server_cpu = "?" if server_cpu_started is None or server_cpu_ended is None else f"{(server_cpu_ended - server_cpu_started) / done * 1000:.1f} ms"
    print(f"  CPU per transfer: the server {server_cpu}, the clients (this process) {clients_cpu / done * 1000:.1f} ms")
    print(f"  retries with the same idempotency key: {replays:,}, {'all answered 200 with the same transaction' if not replays_wrong else f'{replays_wrong} WRONG'}")
    verdict = (audit.stderr.strip().splitlines() or ["(nothing printed)"])[-1]
    print(f"  everything payments audit: exit {audit.returncode}: {verdict}")
    if audit.returncode != 0:
        print("    " + audit.stderr.strip().replace("\n", "\n    "))
        print(f"  the server's log: {log_path}")
    funded = len(names) * FUNDS
    print(f"  wallets sum to {total:,} of {funded:,} funded: {'ok' if total == funded else 'MONEY MISSING'}")
    return audit.returncode == 0 and total == funded and not replays_wrong and not failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["both", "inprocess", "http"], default="both", help="what to measure (default %(default)s)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--http-users", type=int, default=40, help="users signed up for the HTTP part (default %(default)s)")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database (default: embedded SQLite)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (data, the server's log) and print where")
    args = parser.parse_args()
    backend = "PostgreSQL" if args.database_url else "SQLite (embedded)"
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}; database: {backend}")
    folder = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    sound = True
    try:
        if args.part in ("both", "inprocess"):
            sound &= run_in_process(args, folder)
        if args.part in ("both", "http"):
            sound &= run_over_http(args, folder)
    finally:
        if args.keep:
            print(f"\nkept: {folder}")
        else:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    return 0 if sound else 1


if __name__ == "__main__":
    sys.exit(main())
