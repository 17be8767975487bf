"""Calls across two `everything serve` processes whose Redis restarts mid-call.

The scenarios of a deployment behind nginx (a drop inside the grace, a host
stopped or killed mid-call) are in test_deployment.py; this one needs a
Redis of its own to restart (tests/redis_kit.py). Redis keeps no presence
across a restart, and a party whose socket never dropped never sends
``calls.resume``: the call must not take the missing presence for a party
gone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.redis_kit import REDIS_SERVER, Socket, bus_env, next_message, private_redis, processes, until
from tests.test_bus import alice_may_call_bob, bus_state
from tests.test_calls_signaling import ANSWER, OFFER
from tests.test_realtime import connect

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)")

GRACE_SECONDS = 3.0
SWEEP_SECONDS = 0.5
HEARTBEAT_SECONDS = 1.0
SETTINGS = f"""
[realtime]
heartbeat_seconds = {HEARTBEAT_SECONDS}

[plugins.calls]
reconnect_grace_seconds = {GRACE_SECONDS}
sweep_seconds = {SWEEP_SECONDS}
"""


def no_end_for(sockets: list[Socket], seconds: float) -> None:
    """Read every socket for ``seconds``: none may hear its call end (each hears heartbeats meanwhile, so each is alive)."""
    deadline = time.monotonic() + seconds
    heard = [0] * len(sockets)
    while (left := deadline - time.monotonic()) > 0:
        for index, socket in enumerate(sockets):
            try:
                message = json.loads(socket.recv(timeout=min(left, 0.1)))
            except TimeoutError:
                continue
            assert message["type"] != "calls.ended", message
            heard[index] += message["type"] == "kernel.heartbeat"
    assert all(heard), f"heartbeats heard per socket: {heard}"


def test_an_answered_call_outlives_a_redis_restart_and_ends_by_hang_up(tmp_path: Path, database: str | None) -> None:
    (tmp_path / "everything.toml").write_text(SETTINGS)
    with private_redis() as redis:
        env = bus_env(redis, database)
        with processes(tmp_path, env, env) as [first, second]:
            alice, bob = alice_may_call_bob(tmp_path, env, first, second)
            with connect(first, alice) as alice_on_first, connect(second, bob) as bob_on_second:
                invite = {"type": "calls.invite", "id": 1, "call_id": "c-1", "to": "bob_b", "media": "audio", "sdp": OFFER}
                alice_on_first.send(json.dumps(invite))
                assert next_message(alice_on_first, "reply")["ref"] == 1
                assert next_message(bob_on_second, "calls.incoming")["call_id"] == "c-1"
                bob_on_second.send(json.dumps({"type": "calls.answer", "id": 2, "call_id": "c-1", "sdp": ANSWER}))
                assert next_message(alice_on_first, "calls.answered")["call_id"] == "c-1"

                redis.stop()
                until(lambda: bus_state(first) != "ok" and bus_state(second) != "ok", "both processes noticing that redis is gone")
                redis.start()  # empty: every socket's presence is gone
                until(lambda: bus_state(first) == bus_state(second) == "ok", "both processes seeing redis again")

                # Longer than the grace, a heartbeat and a few sweeps of each process: a deadline given
                # for the missing presence would have ended the call by now.
                no_end_for([alice_on_first, bob_on_second], GRACE_SECONDS + HEARTBEAT_SECONDS + 4 * SWEEP_SECONDS)

                bob_on_second.send(json.dumps({"type": "calls.hangup", "id": 3, "call_id": "c-1"}))
                ended = next_message(alice_on_first, "calls.ended")
                assert (ended["reason"], ended["by"]) == ("hangup", "bob_b")
