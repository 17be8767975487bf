"""A Space with many listeners: a bounded state, the full list page by page, and listener churn told in bursts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from starlette.applications import Starlette

from kernel import create_app
from tests.conftest import UserClient, make_settings, running, sign_up
from tests.realtime_kit import ask
from tests.test_spaces_roles import Room, offer, ok

__all__ = ["offer"]  # the module's offer fixture, shared

LISTENERS = ["lis_a", "lis_b", "lis_c", "lis_d", "lis_e"]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Starlette]:
    # Listener churn is told every 30 s here, so that the test sees what is coalesced whatever the machine's speed.
    spaces = {"host_addresses": ["127.0.0.1"], "state_listeners": 3, "listener_churn_seconds": 30}
    settings = make_settings(tmp_path / "data", None, plugins={"spaces": spaces})
    application = create_app(settings)
    with running(application):
        yield application


@pytest.fixture
def room(app: Starlette, offer: str) -> Iterator[Room]:
    with ExitStack() as stack:
        crowd = Room(app, sign_up(app, "hosty"), offer, stack)
        for name in LISTENERS:
            crowd.join(name)
        yield crowd


def test_the_state_names_the_first_listeners_with_raised_hands_first_and_counts_them_all(room: Room) -> None:
    ok(room.ws["lis_e"], {"type": "spaces.raise_hand"})
    space = room.clients["hosty"].get(f"/api/spaces/{room.space_id}").json()
    assert space["listener_count"] == 5
    assert [p["user"]["username"] for p in space["listeners"]] == ["lis_e", "lis_a", "lis_b"]
    assert space["hands"] == ["lis_e"]


def test_every_listener_is_listed_page_by_page(room: Room) -> None:
    host: UserClient = room.clients["hosty"]
    first = host.get(f"/api/spaces/{room.space_id}/listeners", params={"limit": 2}).json()
    second = host.get(f"/api/spaces/{room.space_id}/listeners", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = host.get(f"/api/spaces/{room.space_id}/listeners", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    names = [p["user"]["username"] for page in (first, second, third) for p in page["results"]]
    assert names == LISTENERS and third["next_cursor"] is None


def test_listeners_coming_and_going_reach_the_others_with_the_next_state(app: Starlette, room: Room) -> None:
    host_ws = room.ws["hosty"]
    ask(host_ws, {"type": "spaces.react", "emoji": "👍"})  # read past the fixture's states
    for name in ("late_a", "late_b", "late_c", "late_d"):
        room.join(name)
    ok(room.ws["late_d"], {"type": "spaces.raise_hand"})  # a change on the stage is told at once
    host_ws.send_json({"id": "mark", "type": "spaces.react", "emoji": "🔥"})
    states = []
    while (message := host_ws.receive_json()).get("ref") != "mark":
        if message["type"] == "spaces.state":
            states.append(message["space"])
    assert [state["listener_count"] for state in states] == [9]
    assert states[0]["hands"] == ["late_d"]


def test_a_joining_listener_gets_the_state_at_once(app: Starlette, room: Room, offer: str) -> None:
    newcomer = sign_up(app, "newbie")
    with newcomer.websocket_connect("/ws") as ws:
        ws.receive_json()  # hello
        ws.send_json({"id": "j", "type": "spaces.join", "space_id": room.space_id, "sdp": offer})
        first = ws.receive_json()
        assert first["type"] == "spaces.state" and first["space"]["listener_count"] == 6
