"""Shared pieces of the benchmarks: uvicorn subprocesses on loopback ports, and the load generator.

The load generator is ``wrk`` when it is on the PATH (``apt-get install wrk``),
else ``bench/httpload.py``, a Python asyncio generator run as separate
processes. Every figure printed names the generator that produced it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
START_TIMEOUT = 120.0


# Command line -----------------------------------------------------------------


@dataclass(frozen=True)
class LoadOptions:
    """How hard and how long to drive a server."""

    threads: int = 2
    connections: int = 50
    duration: int = 10
    warmup: int = 2


def add_load_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("load generation")
    add = group.add_argument
    add("--threads", type=int, default=LoadOptions.threads, help="load generator threads (default %(default)s)")
    add("--connections", type=int, default=LoadOptions.connections, help="open connections (default %(default)s)")
    add("--duration", type=int, default=LoadOptions.duration, help="measured seconds per run (default %(default)s)")
    add("--warmup", type=int, default=LoadOptions.warmup, help="unmeasured seconds before each run (default %(default)s)")
    add("--no-wrk", action="store_true", help="use the Python fallback generator even when wrk is installed")


def load_options(args: argparse.Namespace) -> LoadOptions:
    return LoadOptions(threads=args.threads, connections=args.connections, duration=args.duration, warmup=args.warmup)


def describe_load(options: LoadOptions, use_wrk: bool) -> str:
    """The generator and how it drives the server, for the report's header."""
    return (
        f"{generator_name(use_wrk)}, {options.threads} threads, {options.connections} connections, "
        f"{options.duration} s after {options.warmup} s warm-up"
    )


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that ``finally`` blocks stop the servers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


# Servers ----------------------------------------------------------------------


def free_port() -> int:
    """A loopback port free right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """``bench/serve.py`` in a subprocess, its standard error in ``log_path``.

    Use as a context manager: entering starts it and waits until ``ready_path``
    answers 200; leaving stops it (SIGTERM, then SIGKILL after 15 s).
    """

    def __init__(self, app: str, log_path: Path, ready_path: str = "/", extra_args: list[str] | None = None) -> None:
        self.app = app
        self.port = free_port()
        self.log_path = log_path
        self.ready_path = ready_path
        self.command = [sys.executable, str(BENCH_DIR / "serve.py"), app, "--port", str(self.port), *(extra_args or [])]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> Server:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.app} server exited with {self.process.returncode}:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the {self.app} server did not become ready in {START_TIMEOUT:.0f} s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# Load generation ----------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    """One measured run."""

    generator: str
    requests: int
    seconds: float
    non_2xx: int
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def generator_name(use_wrk: bool = True) -> str:
    """Which load generator :func:`load_test` will use, as the report should name it."""
    if use_wrk and shutil.which("wrk"):
        version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split()
        return " ".join(version[:2]) if version else "wrk"
    reason = "--no-wrk given" if use_wrk is False and shutil.which("wrk") else "wrk not found"
    return f"bench/httpload.py (Python asyncio fallback: {reason})"


def load_test(
    url: str,
    paths: list[str],
    headers: list[str],
    options: LoadOptions,
    workdir: Path,
    use_wrk: bool = True,
) -> LoadResult:
    """Drive ``url`` with GETs of ``paths`` (one chosen at random per request), after a warm-up."""
    if use_wrk and shutil.which("wrk"):
        return _wrk(url, paths, headers, options, workdir)
    return _fallback(url, paths, headers, options, workdir)


def _wrk(url: str, paths: list[str], headers: list[str], options: LoadOptions, workdir: Path) -> LoadResult:
    command = ["wrk", "--latency", "-t", str(options.threads), "-c", str(options.connections), "--timeout", "5s"]
    for header in headers:
        command += ["-H", header]
    if len(paths) > 1:
        script = workdir / "paths.lua"
        script.write_text(_wrk_script(paths))
        command += ["-s", str(script)]
        target = url + "/"
    else:
        target = url + paths[0]
    if options.warmup:
        subprocess.run([*command, "-d", f"{options.warmup}s", target], capture_output=True, check=True)
    output = subprocess.run([*command, "-d", f"{options.duration}s", target], capture_output=True, text=True, check=True).stdout
    return parse_wrk(output, generator_name())


def _wrk_script(paths: list[str]) -> str:
    listed = ",\n".join(json.dumps(path) for path in paths)  # JSON strings are valid Lua strings here
    return f"""math.randomseed(os.time())
local paths = {{
{listed}
}}
local count = #paths
request = function()
  return wrk.format("GET", paths[math.random(count)])
end
"""


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str, generator: str) -> LoadResult:
    """Read the figures out of ``wrk --latency`` output."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if not done:
        raise ValueError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    return LoadResult(
        generator=generator,
        requests=int(done.group(1)),
        seconds=_ms(done.group(2) + done.group(3)) / 1000,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=sum(int(value) for value in socket_errors.groups()) if socket_errors else 0,
        p50_ms=_ms(p50.group(1)) if p50 else float("nan"),
        p99_ms=_ms(p99.group(1)) if p99 else float("nan"),
    )


def _fallback(url: str, paths: list[str], headers: list[str], options: LoadOptions, workdir: Path) -> LoadResult:
    paths_file = workdir / "paths.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    per_process = max(1, options.connections // options.threads)
    command = [
        sys.executable, str(BENCH_DIR / "httpload.py"), "--url", url, "--paths-file", str(paths_file),
        "--connections", str(per_process), "--warmup", str(options.warmup), "--duration", str(options.duration),
    ]  # fmt: skip
    for header in headers:
        command += ["--header", header]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(options.threads)]
    try:
        reports = [json.loads(process.communicate()[0]) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    ok = sum(count for status, count in report_statuses(reports) if 200 <= status < 400)
    total = sum(report["requests"] for report in reports)
    return LoadResult(
        generator=generator_name(use_wrk=False),
        requests=total,
        seconds=float(options.duration),
        non_2xx=total - ok,
        errors=sum(report["errors"] for report in reports),
        # Percentiles of separate processes cannot be merged exactly; the worst is shown.
        p50_ms=max(report["p50_us"] for report in reports) / 1000,
        p99_ms=max(report["p99_us"] for report in reports) / 1000,
    )


def report_statuses(reports: list[dict[str, object]]) -> list[tuple[int, int]]:
    return [(int(status), int(count)) for report in reports for status, count in report["statuses"].items()]  # type: ignore[union-attr]


def describe(result: LoadResult) -> str:
    """One line: rate, latency, and anything that was not a 2xx answer."""
    line = (
        f"{result.rate:>10,.0f} req/s   p50 {result.p50_ms:6.2f} ms   p99 {result.p99_ms:6.2f} ms   "
        f"({result.requests:,} requests in {result.seconds:.1f} s)"
    )
    if result.non_2xx or result.errors:
        line += f"   !! {result.non_2xx} non-2xx, {result.errors} socket errors"
    return line
