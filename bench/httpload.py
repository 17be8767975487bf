"""A small HTTP/1.1 keep-alive load generator, the fallback when ``wrk`` is not installed.

One process drives ``--connections`` keep-alive connections with asyncio
(uvloop when available) for ``--warmup`` plus ``--duration`` seconds and
prints one JSON object: requests completed in the measured window, their
rate, status counts and latency percentiles. The harness starts one such
process per "thread", as wrk would use threads, and adds their figures up.

    python bench/httpload.py --url http://127.0.0.1:8000 --path / --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Tally:
    """What the connections of one process measured inside the window."""

    requests: int = 0
    errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_us: list[int] = field(default_factory=list)


def build_request(host: str, path: str, headers: list[str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; returns its status. Needs Content-Length (no chunked bodies)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def drive(host: str, port: int, requests: list[bytes], start: float, stop: float, tally: Tally) -> None:
    """One keep-alive connection sending requests back to back until ``stop``."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (now := time.perf_counter()) < stop:
            writer.write(random.choice(requests))
            try:
                status = await read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                tally.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            if now >= start:
                tally.requests += 1
                tally.statuses[status] += 1
                tally.latencies_us.append(int((time.perf_counter() - now) * 1e6))
    finally:
        writer.close()


async def run(url: str, paths: list[str], headers: list[str], connections: int, warmup: float, duration: float) -> Tally:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [build_request(f"{host}:{port}", path, headers) for path in paths]
    tally = Tally()
    start = time.perf_counter() + warmup
    stop = start + duration
    await asyncio.gather(*(drive(host, port, requests, start, stop, tally) for _ in range(connections)))
    return tally


def percentile(sorted_values: list[int], fraction: float) -> int:
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def event_loop_runner() -> Callable[[Coroutine[Any, Any, Tally]], Tally]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="http://host:port")
    parser.add_argument("--path", action="append", default=[], help="a path to request (repeatable)")
    parser.add_argument("--paths-file", type=Path, help="one path a line, requested at random")
    parser.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("--connections", type=int, default=25)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    paths = list(args.path)
    if args.paths_file:
        paths += [line for line in args.paths_file.read_text().splitlines() if line]
    tally = event_loop_runner()(run(args.url, paths or ["/"], args.header, args.connections, args.warmup, args.duration))
    latencies = sorted(tally.latencies_us)
    print(
        json.dumps(
            {
                "requests": tally.requests,
                "duration": args.duration,
                "errors": tally.errors,
                "statuses": {str(code): count for code, count in tally.statuses.items()},
                "p50_us": percentile(latencies, 0.50),
                "p99_us": percentile(latencies, 0.99),
            }
        )
    )


if __name__ == "__main__":
    main()
