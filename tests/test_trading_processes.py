"""Live prices on a deployment of two server processes over Redis: every socket ticks, and the ticks stay off the bus.

Each process prices the ticks of its own sockets' symbols (the provider
answers any process alike) and hands them to its sockets directly, so a
tick costs Redis nothing; the issue's ceiling is one Redis message per tick
per process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.redis_kit import REDIS_SERVER, private_redis
from tests.test_bus import bus_env, database, next_message, processes  # noqa: F401 - database is a fixture
from tests.test_realtime import bearer, connect

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)")

TICKS = 5


def test_ticks_reach_sockets_on_both_processes_without_crossing_redis(tmp_path: Path, database: str | None) -> None:  # noqa: F811
    (tmp_path / "everything.toml").write_text("[plugins.trading]\ntick_seconds = 0.2\n")
    with private_redis() as redis, processes(tmp_path, bus_env(redis, database), bus_env(redis, database)) as [first, second]:
        sockets = {"alice": (first, bearer(first, "alice")), "bob_b": (second, bearer(second, "bob_b"))}
        with connect(*sockets["alice"]) as on_first, connect(*sockets["bob_b"]) as on_second:
            for socket in (on_first, on_second):
                socket.send(json.dumps({"type": "trading.subscribe", "id": "s", "symbols": ["BTC", "ETH"]}))
                assert next_message(socket, "trading.subscribed")["symbols"] == ["BTC", "ETH"]
            for socket in (on_first, on_second):
                next_message(socket, "trading.tick")  # both processes are ticking
            published_before = redis.publish_calls()
            for socket in (on_first, on_second):
                batches = {next_message(socket, "trading.tick")["at"] for _ in range(TICKS)}
                assert len(batches) == TICKS  # one message a batch, each with its own moment
                assert {quote["symbol"] for quote in next_message(socket, "trading.tick")["quotes"]} == {"BTC", "ETH"}
            published = redis.publish_calls() - published_before
    # At least TICKS batches went out in each of the two processes meanwhile.
    per_tick_per_process = published / (TICKS * 2)
    assert per_tick_per_process <= 1, f"{published} Redis messages for {TICKS} ticks in 2 processes"
