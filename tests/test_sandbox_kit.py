"""sandbox/testing.py, the kit feature teams test their plugins with: used here as they would use it."""

from __future__ import annotations

import pytest

from sandbox.testing import WorldFactory


def test_a_world_runs_only_the_plugins_asked_for(everything: WorldFactory) -> None:
    world = everything(plugins=["feed"])
    alice = world.user("alice")
    assert alice.post("/api/feed/posts", json={"text": "hello"}).status_code == 201
    assert alice.get("/api/spaces").status_code == 404


def test_a_plugin_of_ones_own_runs_beside_them(everything: WorldFactory) -> None:
    world = everything(plugins=[], extra={"recorder": "tests.plugin_fixtures.recorder"})
    alice = world.user("alice")
    assert alice.get("/api/recorder/ping").status_code == 200


def test_users_get_the_plans_asked_for(everything: WorldFactory) -> None:
    world = everything(plugins=["trading"])
    alice = world.user("alice", plans=["premium"])
    bobby = world.user("bobby")
    assert alice.get("/api/trading/quotes/BTC").json()["delayed"] is False
    assert bobby.get("/api/trading/quotes/BTC").json()["delayed"] is True


def test_the_realtime_client_asks_and_receives(everything: WorldFactory) -> None:
    world = everything(plugins=["trading"], settings={"plugins": {"trading": {"tick_seconds": 0.2}}})
    alice = world.user("alice")
    with world.realtime(alice) as ws:
        assert ws.hello["type"] == "kernel.hello" and ws.hello["user"]["username"] == "alice"
        assert ws.ask({"type": "trading.subscribe", "symbols": ["BTC"]})["type"] == "trading.subscribed"
        assert ws.receive("trading.tick")["quotes"][0]["symbol"] == "BTC"


async def test_the_calls_client_places_a_call_with_real_media(everything: WorldFactory) -> None:
    world = everything(plugins=["calls"], settings={"plugins": {"calls": {"host_addresses": ["127.0.0.1"]}}})
    world.user("alice", plans=["premium"])
    bobby = world.user("bobby")
    assert bobby.put("/api/users/alice/follow").status_code == 200  # bobby takes calls from people he follows
    async with world.calls_client("alice", tone_hz=440.0) as alice_calls, world.calls_client("bobby", auto_answer=True, tone_hz=660.0):
        call = await alice_calls.call("bobby")
        await call.wait_connected(20)
        await call.received.wait_for(lambda media: media.audio_frames > 25, 20)
        frequency = call.received.dominant_frequency()
        assert frequency is not None and abs(frequency - 660.0) < 15
        await call.hangup()


@pytest.mark.parametrize("name", ["", "a b"])
def test_a_bad_username_is_refused_plainly(everything: WorldFactory, name: str) -> None:
    world = everything(plugins=["feed"])
    with pytest.raises(AssertionError, match="signing up"):
        world.user(name)
