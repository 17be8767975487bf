"""Kernel overhead: an authenticated kernel API call against a bare Starlette hello-world.

Run:

    python bench/kernel_overhead.py [--rounds 2] [--duration 10] [--connections 50] [--no-request-log] [--no-wrk]

Starts two uvicorn servers (uvloop, httptools, access log off, one worker
each) as subprocesses on free loopback ports:

- the full kernel app, ``kernel.create_app(Settings(...))`` on an embedded
  SQLite database in a temporary data folder, every bundled plugin enabled,
  structured request logs on (JSON lines on the server's standard error,
  which goes to a file, as ``everything serve`` does in production;
  ``--no-request-log`` sets ``log.requests = false`` to show what they cost);
- a bare Starlette app answering ``GET /`` with ``{"hello": "world"}``.

It signs a user up over HTTP, creates a bearer token, then load-tests
``GET /api/me`` with ``Authorization: Bearer <token>`` against the kernel and
``GET /`` against the bare app, alternating the two for ``--rounds`` rounds
(wrk, 2 threads, 50 connections, 10 s after a 2 s warm-up; or the Python
fallback generator when wrk is missing). It prints both rates, taking each
app's best round, and the ratio kernel / bare. The target is a ratio of at
least 0.6. Everything stops and is removed at the end.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import harness
import httpx
from harness import LoadOptions, LoadResult, Server

TARGET_RATIO = 0.6
USERNAME = "bench_user"
PASSWORD = "a long bench password"


@dataclass(frozen=True)
class Target:
    """One server and the request the load generator repeats against it."""

    name: str
    url: str
    path: str
    headers: list[str]


def create_token(base_url: str) -> str:
    """Sign up over HTTP and return a fresh bearer token; checks that it authenticates ``/api/me``."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        signup = client.post("/api/auth/signup", json={"username": USERNAME, "password": PASSWORD})
        signup.raise_for_status()
        csrf = signup.headers["X-CSRF-Token"]
        created = client.post("/api/auth/tokens", json={"name": "bench"}, headers={"X-CSRF-Token": csrf})
        created.raise_for_status()
        token = created.json()["token"]
    me = httpx.get(base_url + "/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    me.raise_for_status()
    if me.json()["username"] != USERNAME:
        raise RuntimeError(f"/api/me answered for someone else: {me.text}")
    return token


def measure(
    targets: list[Target], rounds: int, options: LoadOptions, workdir: Path, use_wrk: bool
) -> dict[str, list[LoadResult]]:
    """Load-test every target once per round, alternating, so that drift hits both alike."""
    results: dict[str, list[LoadResult]] = {target.name: [] for target in targets}
    for round_number in range(1, rounds + 1):
        for target in targets:
            result = harness.load_test(target.url, [target.path], target.headers, options, workdir, use_wrk)
            results[target.name].append(result)
            print(f"  round {round_number}  {target.name:<6} {harness.describe(result)}", flush=True)
    return results


def best(results: list[LoadResult]) -> LoadResult:
    return max(results, key=lambda result: result.rate)


def log_summary(path: Path) -> str:
    lines = path.read_bytes().count(b"\n")
    return f"{lines:,} JSON lines, {path.stat().st_size / 1e6:.1f} MB"


def print_setup(options: LoadOptions, use_wrk: bool, request_log: bool) -> None:
    print(f"load generator: {harness.describe_load(options, use_wrk)}")
    print("servers: uvicorn, loop=uvloop, http=httptools, access_log off, log_config=None, 1 worker each, 127.0.0.1")
    logs = "true (JSON lines on the server's stderr, sent to a file)" if request_log else "false"
    print(f"kernel: create_app(Settings), embedded SQLite, all bundled plugins, log.requests = {logs}")


def report(results: dict[str, list[LoadResult]], log_path: Path) -> None:
    kernel, bare = best(results["kernel"]), best(results["bare"])
    ratio = kernel.rate / bare.rate
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print()
    print(f"bare    GET /         {bare.rate:>10,.0f} req/s  (best of {len(results['bare'])})")
    print(f"kernel  GET /api/me   {kernel.rate:>10,.0f} req/s  (best of {len(results['kernel'])})")
    print(f"ratio   kernel/bare   {ratio:>10.2f}        target >= {TARGET_RATIO}: {verdict}")
    print(f"kernel server stderr: {log_summary(log_path)}")


def run(options: LoadOptions, rounds: int, use_wrk: bool, request_log: bool) -> None:
    """Start both servers in a temporary folder, measure, report; everything is removed after."""
    with tempfile.TemporaryDirectory(prefix="everything-bench-") as tmp:
        workdir = Path(tmp)
        kernel_log = workdir / "kernel-server.log"
        kernel_args = ["--data-dir", str(workdir / "data")] + ([] if request_log else ["--no-request-log"])
        with (
            Server("kernel", kernel_log, "/readyz", kernel_args) as kernel_server,
            Server("bare", workdir / "bare-server.log", "/") as bare_server,
        ):
            token = create_token(kernel_server.url)
            targets = [
                Target("bare", bare_server.url, "/", []),
                Target("kernel", kernel_server.url, "/api/me", [f"Authorization: Bearer {token}"]),
            ]
            results = measure(targets, rounds, options, workdir, use_wrk)
        report(results, kernel_log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per app; the best counts (default %(default)s)")
    parser.add_argument("--no-request-log", action="store_true", help="serve the kernel with log.requests = false")
    harness.add_load_options(parser)
    args = parser.parse_args()
    options = harness.load_options(args)
    harness.exit_cleanly_on_sigterm()
    print_setup(options, not args.no_wrk, not args.no_request_log)
    run(options, args.rounds, not args.no_wrk, not args.no_request_log)


if __name__ == "__main__":
    main()
