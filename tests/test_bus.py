"""The Redis bus between server processes: local delivery without it, per-user and per-process channels, outages.

Every test runs real `everything serve` processes against a Redis server of
its own (tests/redis_kit.py), which it may kill and start again, and on
PostgreSQL when the tests have one (else a shared SQLite file).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import serve_env
from tests.redis_kit import REDIS_SERVER, PrivateRedis, bus_env, next_message, private_redis, processes, until
from tests.test_calls_signaling import ANSWER, OFFER
from tests.test_realtime import bearer, connect

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)")

def follow(base_url: str, token: str, username: str) -> None:
    response = httpx.put(
        f"{base_url}/api/users/{username}/follow", headers={"Authorization": f"Bearer {token}"}, timeout=30, trust_env=False
    )
    assert response.status_code == 200, response.text


def follower_in(notification: dict[str, Any]) -> str:
    assert notification["notification"]["kind"] == "kernel.follow"
    return str(notification["notification"]["actor"]["username"])


def readyz(base_url: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{base_url}/readyz", timeout=10, trust_env=False)
    return response.status_code, response.json()


def bus_state(base_url: str) -> str:
    return str(readyz(base_url)[1]["checks"]["bus"])


def alice_may_call_bob(tmp_path: Path, env: dict[str, str], first: str, second: str) -> tuple[str, str]:
    """Tokens of alice (premium, through the CLI, on ``first``) and bob_b (on ``second``, following her), once ``first`` lets her call him."""
    alice, bob = bearer(first, "alice"), bearer(second, "bob_b")
    granted = subprocess.run(
        [sys.executable, "-m", "kernel.cli", "grant", "alice", "premium"],
        cwd=tmp_path,
        env={**serve_env(), **env},
        capture_output=True,
        text=True,
    )
    assert granted.returncode == 0, granted.stderr
    follow(second, bob, "alice")  # so that alice may call bob
    until(
        lambda: httpx.get(f"{first}/api/calls/can-call/bob_b", headers={"Authorization": f"Bearer {alice}"}, trust_env=False).json()[
            "allowed"
        ],
        "alice's grant reaching the first process",
    )
    return alice, bob



def test_a_socket_on_the_same_process_gets_its_messages_while_redis_is_down(tmp_path: Path, database: str | None) -> None:
    with private_redis() as redis, processes(tmp_path, bus_env(redis, database)) as [server]:
        alice, bob = bearer(server, "alice"), bearer(server, "bob_b")
        with connect(server, bob) as bob_socket:
            redis.stop()
            until(lambda: bus_state(server) != "ok", "the server noticing that redis is gone")
            follow(server, alice, "bob_b")
            assert follower_in(next_message(bob_socket, "kernel.notification")) == "alice"


def test_a_message_for_a_user_reaches_their_socket_on_the_other_process(tmp_path: Path, database: str | None) -> None:
    with private_redis() as redis, processes(tmp_path, bus_env(redis, database), bus_env(redis, database)) as [first, second]:
        alice, bob = bearer(first, "alice"), bearer(second, "bob_b")
        with connect(second, bob) as bob_on_second:
            follow(first, alice, "bob_b")
            assert follower_in(next_message(bob_on_second, "kernel.notification")) == "alice"


def test_a_process_listens_to_a_user_only_while_it_holds_a_socket_of_theirs(tmp_path: Path, database: str | None) -> None:
    with private_redis() as redis, processes(tmp_path, bus_env(redis, database), bus_env(redis, database)) as [_, second]:
        bob = bearer(second, "bob_b")
        assert redis.channels("*:u:*") == set()
        with connect(second, bob):
            [channel] = redis.channels("*:u:*")
            assert redis.cli("pubsub", "numsub", channel).splitlines() == [channel, "1"]  # the second process alone
        until(lambda: redis.channels("*:u:*") == set(), "the user channel left once bob's socket closed")


def test_a_user_who_reconnects_at_once_still_hears_from_the_other_process(tmp_path: Path, database: str | None) -> None:
    # Each socket that closes unsubscribes its user's channel while the next one subscribes it again:
    # whatever order the two commands take, the last socket's channel must end up subscribed.
    with private_redis() as redis, processes(tmp_path, bus_env(redis, database), bus_env(redis, database)) as [first, second]:
        alice, bob = bearer(first, "alice"), bearer(second, "bob_b")
        for _ in range(10):
            with connect(second, bob):
                pass
        with connect(second, bob) as bob_on_second:
            follow(first, alice, "bob_b")
            assert follower_in(next_message(bob_on_second, "kernel.notification")) == "alice"


def test_a_message_for_a_connection_reaches_it_on_the_other_process(tmp_path: Path, database: str | None) -> None:
    env = bus_env(redis := PrivateRedis(), database)
    redis.start()
    try:
        with processes(tmp_path, env, env) as [first, second]:
            alice, bob = alice_may_call_bob(tmp_path, env, first, second)
            with connect(first, alice) as alice_on_first, connect(second, bob) as bob_on_second:
                alice_on_first.send(
                    json.dumps({"type": "calls.invite", "id": 1, "call_id": "c-1", "to": "bob_b", "media": "audio", "sdp": OFFER})
                )
                assert next_message(alice_on_first, "reply")["ref"] == 1
                assert next_message(bob_on_second, "calls.incoming")["call_id"] == "c-1"
                bob_on_second.send(json.dumps({"type": "calls.answer", "id": 2, "call_id": "c-1", "sdp": ANSWER}))
                # The call is bound to alice's one socket: the answer is addressed to that connection, on the first process.
                assert next_message(alice_on_first, "calls.answered") == {
                    "type": "calls.answered",
                    "call_id": "c-1",
                    "sdp": ANSWER,
                }
    finally:
        redis.stop()


def test_a_user_with_sockets_on_both_processes_gets_each_message_once(tmp_path: Path, database: str | None) -> None:
    with private_redis() as redis, processes(tmp_path, bus_env(redis, database), bus_env(redis, database)) as [first, second]:
        alice = bearer(first, "alice")
        # The followers take turns between the processes: a copy of one process's message echoed back to it
        # by Redis would reach its sockets before the next message the other process publishes.
        turns = [("carol", first), ("dave", second), ("erin", first), ("frank", second)]
        tokens = {name: bearer(server, name) for name, server in turns}
        with connect(first, alice) as here, connect(first, alice) as here_too, connect(second, alice) as there:
            for name, server in turns:
                follow(server, tokens[name], "alice")
            for socket in (here, here_too, there):
                heard: list[str] = []
                while set(heard) != set(tokens):
                    heard.append(follower_in(next_message(socket, "kernel.notification")))
                assert sorted(heard) == sorted(tokens)


def test_the_bus_subscribes_again_after_redis_restarts_without_restarting_the_servers(
    tmp_path: Path, database: str | None
) -> None:
    with private_redis() as redis, processes(tmp_path, bus_env(redis, database), bus_env(redis, database)) as [first, second]:
        alice, bob = bearer(first, "alice"), bearer(second, "bob_b")
        with connect(second, bob) as bob_on_second:
            redis.stop()
            until(lambda: bus_state(first) != "ok" and bus_state(second) != "ok", "both servers noticing that redis is gone")
            redis.start()
            # Each process's own channel, and the user channel of bob's socket, are back without a restart.
            until(
                lambda: len(redis.channels("*:p:*")) == 2 and len(redis.channels("*:u:*")) == 1, "the servers subscribing again"
            )
            until(lambda: bus_state(first) == "ok", "the first server seeing redis again")
            follow(first, alice, "bob_b")
            assert follower_in(next_message(bob_on_second, "kernel.notification")) == "alice"


def test_readyz_says_the_bus_is_down_after_the_setting_and_ready_again_once_it_returns(
    tmp_path: Path, database: str | None
) -> None:
    with (
        private_redis() as redis,
        processes(tmp_path, bus_env(redis, database, EVERYTHING_BUS__DOWN_AFTER_SECONDS="1")) as [server],
    ):
        assert readyz(server) == (200, {"status": "ready", "checks": {"database": "ok", "plugins": "started", "bus": "ok"}})
        redis.stop()
        until(lambda: readyz(server)[0] == 503, "readyz answering 503")
        assert readyz(server)[1]["checks"]["bus"] == "down"
        redis.start()
        until(lambda: readyz(server)[0] == 200, "readyz answering 200 again")
        assert readyz(server)[1]["checks"]["bus"] == "ok"


def test_two_database_urls_of_one_database_share_the_bus(tmp_path: Path, database: str | None) -> None:
    if database is not None:
        urls = (database, database.replace("127.0.0.1", "localhost"))
        assert urls[0] != urls[1], "the test's PostgreSQL URL names 127.0.0.1"
    else:
        urls = (f"sqlite:///{tmp_path}/shared.db", f"sqlite:///{tmp_path}/./shared.db")
    with private_redis() as redis, processes(tmp_path, bus_env(redis, urls[0]), bus_env(redis, urls[1])) as [first, second]:
        assert len(redis.channels("*:control")) == 1  # one deployment, one name
        alice, bob = bearer(first, "alice"), bearer(second, "bob_b")
        with connect(second, bob) as bob_on_second:
            follow(first, alice, "bob_b")
            assert follower_in(next_message(bob_on_second, "kernel.notification")) == "alice"
