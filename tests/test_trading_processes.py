"""Live prices on a deployment of two server processes over Redis: every socket ticks, and the ticks stay off the bus.

Each process prices the ticks of its own sockets' symbols (the provider
answers any process alike) and hands them to its sockets directly, so a
tick costs Redis nothing, however many sockets a process holds.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.redis_kit import REDIS_SERVER, bus_env, next_message, private_redis, processes
from tests.test_realtime import bearer, connect

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)")

TICKS = 5
# Several sockets in each process: a tick sent over the bus once per socket would show, where with
# one socket per process it would look the same as once per process.
SOCKETS_PER_PROCESS = 3


def test_ticks_reach_every_socket_on_both_processes_without_crossing_redis(tmp_path: Path, database: str | None) -> None:
    (tmp_path / "everything.toml").write_text("[plugins.trading]\ntick_seconds = 0.2\n")
    with (
        private_redis() as redis,
        processes(tmp_path, bus_env(redis, database), bus_env(redis, database)) as [first, second],
        ExitStack() as stack,
    ):
        tokens = {first: bearer(first, "alice"), second: bearer(second, "bob_b")}
        sockets = [stack.enter_context(connect(server, tokens[server])) for server in (first, second) for _ in range(SOCKETS_PER_PROCESS)]
        for socket in sockets:
            socket.send(json.dumps({"type": "trading.subscribe", "id": "s", "symbols": ["BTC", "ETH"]}))
            assert next_message(socket, "trading.subscribed")["symbols"] == ["BTC", "ETH"]
        for socket in sockets:
            next_message(socket, "trading.tick")  # both processes are ticking
        published_before = redis.publish_calls()
        for socket in sockets:
            batches = {next_message(socket, "trading.tick")["at"] for _ in range(TICKS)}
            assert len(batches) == TICKS  # one message a batch, each with its own moment
            assert {quote["symbol"] for quote in next_message(socket, "trading.tick")["quotes"]} == {"BTC", "ETH"}
        published = redis.publish_calls() - published_before
    # Every socket got TICKS batches meanwhile, each made in the socket's own process: none crossed Redis.
    assert published == 0, f"{published} Redis messages for {TICKS} ticks to {SOCKETS_PER_PROCESS} sockets in each of 2 processes"
