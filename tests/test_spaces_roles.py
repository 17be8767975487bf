"""The stage's rules through the realtime channel: joining, hands, roles, caps, microphones, removal, reactions.

Every join carries a real offer made by an aiortc ``RTCPeerConnection``
with a receive-only audio transceiver, as a listener's browser would send,
and the server answers it with its real media backend (aiortc).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.testclient import WebSocketTestSession

from kernel import create_app
from plugins.spaces.models import members, spaces
from plugins.spaces.service import SPACES
from tests.conftest import UserClient, assert_error, make_settings, running, sign_up
from tests.realtime_kit import ask, connect, receive

aiortc = pytest.importorskip("aiortc")
pytest.importorskip("plugins.spaces.aiortc_media")


async def _make_offer() -> str:
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


@pytest.fixture(scope="module")
def offer() -> str:
    """One listener's offer; every join in this module answers a copy of it with a new server peer."""
    return asyncio.run(_make_offer())


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Starlette]:
    # The embedded database only: the rules live in the service; the API tests run on PostgreSQL too.
    application = create_app(
        make_settings(tmp_path / "data", None, plugins={"spaces": {"host_addresses": ["127.0.0.1"]}})
    )
    with running(application):
        yield application


@pytest.fixture
def host(app: Starlette) -> UserClient:
    return sign_up(app, "hosty")


def ok(ws: WebSocketTestSession, message: dict[str, Any]) -> dict[str, Any]:
    answer = ask(ws, message)
    assert answer["type"] != "error", answer
    return answer


def refused(ws: WebSocketTestSession, message: dict[str, Any], code: str) -> dict[str, Any]:
    answer = ask(ws, message)
    assert answer["type"] == "error" and answer["code"] == code, answer
    assert answer["message"]
    return answer


def new_space(client: UserClient, **body: Any) -> int:
    response = client.post("/api/spaces", json={"title": "Stage test", **body})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def state(client: UserClient, space_id: int) -> dict[str, Any]:
    return client.get(f"/api/spaces/{space_id}").json()


def role_of(client: UserClient, space_id: int, username: str) -> str | None:
    space = state(client, space_id)
    for person in space["stage"] + space["listeners"]:
        if person["user"]["username"] == username:
            return person["role"]
    return None


def person(client: UserClient, space_id: int, username: str) -> dict[str, Any]:
    space = state(client, space_id)
    return next(p for p in space["stage"] + space["listeners"] if p["user"]["username"] == username)


class Room:
    """A Space with its host and any number of others joined, each over their own socket."""

    def __init__(self, app: Starlette, host: UserClient, offer: str, stack: ExitStack) -> None:
        self.app, self.offer, self.stack = app, offer, stack
        self.space_id = new_space(host)
        self.clients: dict[str, UserClient] = {"hosty": host}
        self.ws: dict[str, WebSocketTestSession] = {}
        self.join("hosty")

    def join(self, username: str) -> WebSocketTestSession:
        client = self.clients.get(username) or sign_up(self.app, username)
        self.clients[username] = client
        ws = self.stack.enter_context(connect(client))
        answer = ok(ws, {"type": "spaces.join", "space_id": self.space_id, "sdp": self.offer})
        assert answer["type"] == "spaces.joined"
        self.ws[username] = ws
        return ws

    def do(self, username: str, kind: str, **fields: Any) -> dict[str, Any]:
        return ask(self.ws[username], {"type": f"spaces.{kind}", **fields})

    def role(self, username: str) -> str | None:
        return role_of(self.clients["hosty"], self.space_id, username)

    def person(self, username: str) -> dict[str, Any]:
        return person(self.clients["hosty"], self.space_id, username)


@pytest.fixture
def room(app: Starlette, host: UserClient, offer: str) -> Iterator[Room]:
    with ExitStack() as stack:
        yield Room(app, host, offer, stack)


def with_cohost(room: Room, name: str = "cohost1") -> None:
    room.join(name)
    assert room.do("hosty", "set_role", user=name, role="cohost")["type"] == "reply"


def with_speaker(room: Room, name: str = "speaker1") -> None:
    room.join(name)
    assert room.do("hosty", "invite", user=name)["type"] == "reply"


# Joining ------------------------------------------------------------------------------------


def test_joining_answers_the_offer_and_seats_a_listener(room: Room) -> None:
    ws = room.join("lisa")
    assert room.role("lisa") == "listener"
    assert room.role("hosty") == "host"
    assert state(room.clients["hosty"], room.space_id)["listener_count"] == 1
    assert ws is room.ws["lisa"]


def test_the_answer_is_a_session_description(app: Starlette, host: UserClient, offer: str) -> None:
    space_id = new_space(host)
    with connect(host) as ws:
        answer = ok(ws, {"type": "spaces.join", "space_id": space_id, "sdp": offer})
    assert answer["sdp"].startswith("v=0")
    assert "m=audio" in answer["sdp"]
    assert answer["role"] == "host"


def test_everyone_in_the_space_gets_the_new_state(room: Room) -> None:
    room.join("lisa")
    message = receive(room.ws["hosty"], "spaces.state")
    while message["space"]["listener_count"] != 1:
        message = receive(room.ws["hosty"], "spaces.state")
    assert message["space"]["id"] == room.space_id


def test_a_socket_that_closes_leaves_the_space(app: Starlette, room: Room, offer: str) -> None:
    lisa = sign_up(app, "lisa")
    with connect(lisa) as ws:
        ok(ws, {"type": "spaces.join", "space_id": room.space_id, "sdp": offer})
        assert room.role("lisa") == "listener"
    for _ in range(100):
        if room.role("lisa") is None:
            break
        app.state.test_portal.call(asyncio.sleep, 0.02)
    assert room.role("lisa") is None


def test_leaving_takes_one_out_of_the_space(room: Room) -> None:
    room.join("lisa")
    assert room.do("lisa", "leave")["type"] == "spaces.left"
    assert room.role("lisa") is None
    refused(room.ws["lisa"], {"type": "spaces.raise_hand"}, "not_in_space")


def test_joining_an_unknown_space_is_refused(host: UserClient, offer: str) -> None:
    with connect(host) as ws:
        refused(ws, {"type": "spaces.join", "space_id": 999999, "sdp": offer}, "unknown_space")


def test_an_ended_space_refuses_joins(app: Starlette, room: Room, offer: str) -> None:
    assert room.clients["hosty"].post(f"/api/spaces/{room.space_id}/end").status_code == 200
    receive(room.ws["hosty"], "spaces.ended")
    with connect(sign_up(app, "late")) as ws:
        refused(ws, {"type": "spaces.join", "space_id": room.space_id, "sdp": offer}, "space_ended")


def test_ending_tells_everyone_in_the_space(room: Room) -> None:
    room.join("lisa")
    assert room.clients["hosty"].post(f"/api/spaces/{room.space_id}/end").status_code == 200
    assert receive(room.ws["lisa"], "spaces.ended")["space_id"] == room.space_id
    refused(room.ws["lisa"], {"type": "spaces.raise_hand"}, "not_in_space")


def test_a_scheduled_space_admits_only_its_host_until_it_starts(app: Starlette, host: UserClient, offer: str) -> None:
    starts = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    space_id = new_space(host, starts_at=starts)
    with connect(sign_up(app, "early")) as ws:
        refused(ws, {"type": "spaces.join", "space_id": space_id, "sdp": offer}, "not_started")


def test_the_host_joining_starts_a_scheduled_space_and_tells_followers(app: Starlette, host: UserClient, offer: str) -> None:
    fan = sign_up(app, "fanny")
    assert fan.put("/api/users/hosty/follow").status_code == 200
    space_id = new_space(host, starts_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    with connect(host) as ws:
        ok(ws, {"type": "spaces.join", "space_id": space_id, "sdp": offer})
    assert state(host, space_id)["status"] == "live"
    assert "spaces.started" in [note["kind"] for note in fan.get("/api/notifications").json()["results"]]


# Hands ----------------------------------------------------------------------------------------


def test_a_listener_raises_a_hand(room: Room) -> None:
    room.join("lisa")
    assert room.do("lisa", "raise_hand")["type"] == "reply"
    assert state(room.clients["hosty"], room.space_id)["hands"] == ["lisa"]


def test_a_speaker_cannot_raise_a_hand(room: Room) -> None:
    with_speaker(room)
    assert room.do("speaker1", "raise_hand")["code"] == "forbidden_role"


def test_a_listener_lowers_their_own_hand(room: Room) -> None:
    room.join("lisa")
    room.do("lisa", "raise_hand")
    assert room.do("lisa", "lower_hand")["type"] == "reply"
    assert state(room.clients["hosty"], room.space_id)["hands"] == []


def test_a_cohost_lowers_someone_elses_hand(room: Room) -> None:
    with_cohost(room)
    room.join("lisa")
    room.do("lisa", "raise_hand")
    assert room.do("cohost1", "lower_hand", user="lisa")["type"] == "reply"
    assert state(room.clients["hosty"], room.space_id)["hands"] == []


def test_a_listener_cannot_lower_someone_elses_hand(room: Room) -> None:
    room.join("lisa")
    room.join("lenny")
    room.do("lisa", "raise_hand")
    assert room.do("lenny", "lower_hand", user="lisa")["code"] == "forbidden_role"


# Inviting to the stage and roles ---------------------------------------------------------------


def test_the_host_invites_a_listener_to_speak(room: Room) -> None:
    room.join("lisa")
    room.do("lisa", "raise_hand")
    assert room.do("hosty", "invite", user="lisa")["type"] == "reply"
    assert room.person("lisa") | {"user": None} == {"user": None, "role": "speaker", "muted": True, "hand_raised": False}


def test_a_cohost_invites_a_listener_to_speak(room: Room) -> None:
    with_cohost(room)
    room.join("lisa")
    assert room.do("cohost1", "invite", user="lisa")["type"] == "reply"
    assert room.role("lisa") == "speaker"


def test_a_speaker_cannot_invite(room: Room) -> None:
    with_speaker(room)
    room.join("lisa")
    assert room.do("speaker1", "invite", user="lisa")["code"] == "forbidden_role"


def test_a_listener_cannot_invite_themselves(room: Room) -> None:
    room.join("lisa")
    assert room.do("lisa", "invite", user="lisa")["code"] == "forbidden_role"


def test_inviting_someone_not_in_the_space_is_refused(room: Room) -> None:
    sign_up(room.app, "outside")
    assert room.do("hosty", "invite", user="outside")["code"] == "not_in_space"


def test_inviting_a_speaker_again_is_refused(room: Room) -> None:
    with_speaker(room)
    assert room.do("hosty", "invite", user="speaker1")["code"] == "already_on_stage"


def test_the_host_makes_a_cohost(room: Room) -> None:
    with_cohost(room)
    assert room.role("cohost1") == "cohost"


def test_a_cohost_cannot_make_a_cohost(room: Room) -> None:
    with_cohost(room)
    room.join("lisa")
    assert room.do("cohost1", "set_role", user="lisa", role="cohost")["code"] == "forbidden_role"


def test_a_third_cohost_is_refused(room: Room) -> None:
    with_cohost(room, "cohost1")
    with_cohost(room, "cohost2")
    room.join("lisa")
    assert room.do("hosty", "set_role", user="lisa", role="cohost")["code"] == "cohosts_full"


def test_a_cohost_cannot_demote_another_cohost(room: Room) -> None:
    with_cohost(room, "cohost1")
    with_cohost(room, "cohost2")
    assert room.do("cohost1", "set_role", user="cohost2", role="listener")["code"] == "forbidden_role"


def test_the_host_demotes_a_cohost(room: Room) -> None:
    with_cohost(room)
    assert room.do("hosty", "set_role", user="cohost1", role="speaker")["type"] == "reply"
    assert room.role("cohost1") == "speaker"


def test_a_cohost_moves_a_speaker_back_to_listening(room: Room) -> None:
    with_cohost(room)
    with_speaker(room)
    assert room.do("cohost1", "set_role", user="speaker1", role="listener")["type"] == "reply"
    assert room.role("speaker1") == "listener"


def test_a_speaker_steps_down_themselves(room: Room) -> None:
    with_speaker(room)
    assert room.do("speaker1", "set_role", user="speaker1", role="listener")["type"] == "reply"
    assert room.role("speaker1") == "listener"


def test_a_listener_cannot_promote_themselves(room: Room) -> None:
    room.join("lisa")
    assert room.do("lisa", "set_role", user="lisa", role="speaker")["code"] == "forbidden_role"


def test_a_speaker_cannot_move_someone_else(room: Room) -> None:
    with_speaker(room)
    room.join("lisa")
    assert room.do("speaker1", "set_role", user="lisa", role="speaker")["code"] == "forbidden_role"


def test_nobody_changes_the_hosts_role(room: Room) -> None:
    with_cohost(room)
    assert room.do("cohost1", "set_role", user="hosty", role="listener")["code"] == "forbidden_role"


def test_the_host_role_cannot_be_given(room: Room) -> None:
    room.join("lisa")
    answer = room.do("hosty", "set_role", user="lisa", role="host")
    assert answer["code"] == "validation_error" and answer["field"] == "role"


def test_the_stage_holds_at_most_ten_speakers(room: Room) -> None:
    for number in range(10):
        with_speaker(room, f"speaker{number}")
    room.join("lisa")
    assert room.do("hosty", "invite", user="lisa")["code"] == "stage_full"
    assert room.do("hosty", "set_role", user="lisa", role="speaker")["code"] == "stage_full"
    assert len(state(room.clients["hosty"], room.space_id)["stage"]) == 11


# Microphones ----------------------------------------------------------------------------------


def test_a_speaker_unmutes_and_mutes_themselves(room: Room) -> None:
    with_speaker(room)
    assert room.do("speaker1", "mute", muted=False)["type"] == "reply"
    assert room.person("speaker1")["muted"] is False
    assert room.do("speaker1", "mute")["type"] == "reply"
    assert room.person("speaker1")["muted"] is True


def test_a_listener_has_no_microphone_to_unmute(room: Room) -> None:
    room.join("lisa")
    assert room.do("lisa", "mute", muted=False)["code"] == "forbidden_role"


def test_the_host_mutes_a_speaker(room: Room) -> None:
    with_speaker(room)
    room.do("speaker1", "mute", muted=False)
    assert room.do("hosty", "mute", user="speaker1")["type"] == "reply"
    assert room.person("speaker1")["muted"] is True


def test_a_cohost_mutes_a_speaker(room: Room) -> None:
    with_cohost(room)
    with_speaker(room)
    room.do("speaker1", "mute", muted=False)
    assert room.do("cohost1", "mute", user="speaker1")["type"] == "reply"
    assert room.person("speaker1")["muted"] is True


def test_a_speaker_cannot_mute_the_host(room: Room) -> None:
    with_speaker(room)
    room.do("hosty", "mute", muted=False)
    assert room.do("speaker1", "mute", user="hosty")["code"] == "forbidden_role"
    assert room.person("hosty")["muted"] is False


def test_a_speaker_cannot_mute_another_speaker(room: Room) -> None:
    with_speaker(room, "speaker1")
    with_speaker(room, "speaker2")
    assert room.do("speaker1", "mute", user="speaker2")["code"] == "forbidden_role"


def test_a_cohost_cannot_mute_the_host(room: Room) -> None:
    with_cohost(room)
    assert room.do("cohost1", "mute", user="hosty")["code"] == "forbidden_role"


def test_nobody_unmutes_someone_else(room: Room) -> None:
    with_speaker(room)
    assert room.do("hosty", "mute", user="speaker1", muted=False)["code"] == "forbidden_role"


# Removal --------------------------------------------------------------------------------------


def test_a_removed_listener_is_told_and_cannot_rejoin(room: Room) -> None:
    room.join("lisa")
    assert room.do("hosty", "remove", user="lisa")["type"] == "reply"
    assert receive(room.ws["lisa"], "spaces.left")["reason"] == "removed"
    assert room.role("lisa") is None
    refused(room.ws["lisa"], {"type": "spaces.join", "space_id": room.space_id, "sdp": room.offer}, "removed")


def test_a_cohost_removes_a_speaker(room: Room) -> None:
    with_cohost(room)
    with_speaker(room)
    assert room.do("cohost1", "remove", user="speaker1")["type"] == "reply"
    assert room.role("speaker1") is None


def test_a_cohost_cannot_remove_another_cohost(room: Room) -> None:
    with_cohost(room, "cohost1")
    with_cohost(room, "cohost2")
    assert room.do("cohost1", "remove", user="cohost2")["code"] == "forbidden_role"


def test_nobody_removes_the_host(room: Room) -> None:
    with_cohost(room)
    assert room.do("cohost1", "remove", user="hosty")["code"] == "forbidden_role"


def test_a_speaker_cannot_remove_anyone(room: Room) -> None:
    with_speaker(room)
    room.join("lisa")
    assert room.do("speaker1", "remove", user="lisa")["code"] == "forbidden_role"


# Reactions and recording ----------------------------------------------------------------------


def test_a_reaction_reaches_everyone(room: Room) -> None:
    room.join("lisa")
    expected = {"type": "spaces.reaction", "space_id": room.space_id, "user": "lisa", "emoji": "👏"}
    room.ws["lisa"].send_json({"id": "r", "type": "spaces.react", "emoji": "👏"})
    seen = []
    while not seen or seen[-1].get("ref") != "r":
        seen.append(room.ws["lisa"].receive_json())
    assert seen[-1]["type"] == "reply"
    assert expected in seen  # the sender's own tab shows it too
    assert receive(room.ws["hosty"], "spaces.reaction") == expected


def test_a_reaction_outside_the_allow_list_is_refused(room: Room) -> None:
    answer = room.do("hosty", "react", emoji="🍆")
    assert answer["code"] == "validation_error" and answer["field"] == "emoji"


def test_recording_needs_premium(room: Room) -> None:
    answer = room.do("hosty", "record", on=True)
    assert answer["code"] == "premium_required"
    assert answer["feature"] == "spaces.record"


def test_a_premium_host_records(app: Starlette, room: Room) -> None:
    kernel = app.state.kernel
    app.state.test_portal.call(kernel.grant, kernel.user("hosty"), "premium")
    assert room.do("hosty", "record", on=True)["type"] == "reply"
    assert state(room.clients["hosty"], room.space_id)["recording"] is True
    assert room.do("hosty", "record", on=False)["type"] == "reply"
    assert state(room.clients["hosty"], room.space_id)["recording"] is False


def test_a_host_whose_premium_lapsed_can_still_stop_recording(app: Starlette, room: Room) -> None:
    kernel = app.state.kernel
    app.state.test_portal.call(kernel.grant, kernel.user("hosty"), "premium")
    assert room.do("hosty", "record", on=True)["type"] == "reply"
    app.state.test_portal.call(kernel.revoke, kernel.user("hosty"), "premium")
    assert room.do("hosty", "record", on=False)["type"] == "reply"
    assert state(room.clients["hosty"], room.space_id)["recording"] is False
    assert room.do("hosty", "record", on=True)["code"] == "premium_required"


def test_a_premium_cohost_cannot_record(app: Starlette, room: Room) -> None:
    with_cohost(room)
    kernel = app.state.kernel
    app.state.test_portal.call(kernel.grant, kernel.user("cohost1"), "premium")
    assert room.do("cohost1", "record", on=True)["code"] == "forbidden_role"


# Malformed messages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code", "field"),
    [
        ({"type": "spaces.join", "space_id": 1}, "validation_error", "sdp"),
        ({"type": "spaces.join", "sdp": "v=0"}, "validation_error", "space_id"),
        ({"type": "spaces.join", "space_id": "1", "sdp": "v=0\r\no=x\r\nm=audio"}, "validation_error", "space_id"),
        ({"type": "spaces.join", "space_id": 1, "sdp": "hello"}, "invalid_sdp", "sdp"),
        ({"type": "spaces.invite"}, "validation_error", "user"),
        ({"type": "spaces.invite", "user": 7}, "validation_error", "user"),
        ({"type": "spaces.set_role", "user": "lisa", "role": "boss"}, "validation_error", "role"),
        ({"type": "spaces.mute", "muted": "yes"}, "validation_error", "muted"),
        ({"type": "spaces.record", "on": 1}, "validation_error", "on"),
    ],
)
def test_a_malformed_message_is_refused_naming_the_field(
    host: UserClient, message: dict[str, Any], code: str, field: str
) -> None:
    if message["type"] == "spaces.record":
        app = host.app
        app.state.test_portal.call(app.state.kernel.grant, app.state.kernel.user("hosty"), "premium")  # type: ignore[attr-defined]
    with connect(host) as ws:
        answer = refused(ws, message, code)
    assert answer["field"] == field


def test_an_action_before_joining_is_refused(host: UserClient) -> None:
    with connect(host) as ws:
        refused(ws, {"type": "spaces.raise_hand"}, "not_in_space")


def test_an_action_naming_another_space_is_refused(room: Room) -> None:
    other = new_space(room.clients["hosty"])
    assert room.do("hosty", "invite", user="hosty", space_id=other)["code"] == "not_in_space"


def test_an_unknown_user_is_not_in_the_space(room: Room) -> None:
    assert room.do("hosty", "remove", user="nobody_here")["code"] == "not_in_space"


def test_an_unknown_space_message_type_is_refused(host: UserClient) -> None:
    with connect(host) as ws:
        refused(ws, {"type": "spaces.dance"}, "unknown_type")


def test_assert_error_shape_for_http(host: UserClient) -> None:
    assert_error(host.get("/api/spaces/123456"), 404, "unknown_space")


# Speaking and tabs ----------------------------------------------------------------------------


def test_the_media_backend_reports_speakers_to_the_service(app: Starlette) -> None:
    service = SPACES.of(app.state.kernel)
    assert service.media is not None
    assert service.media.on_speaking == service.on_speaking


def test_who_is_speaking_is_relayed_to_everyone(app: Starlette, room: Room) -> None:
    room.join("lisa")
    service = SPACES.of(app.state.kernel)
    host_id = app.state.kernel.user("hosty").id
    app.state.test_portal.call(service.on_speaking, room.space_id, [host_id])
    assert receive(room.ws["lisa"], "spaces.speaking") == {
        "type": "spaces.speaking",
        "space_id": room.space_id,
        "users": ["hosty"],
    }


def test_joining_from_a_second_tab_moves_the_membership_there(room: Room) -> None:
    room.join("lisa")
    first = room.ws["lisa"]
    second = room.stack.enter_context(connect(room.clients["lisa"]))
    ok(second, {"type": "spaces.join", "space_id": room.space_id, "sdp": room.offer})
    assert receive(first, "spaces.left")["reason"] == "joined_elsewhere"
    assert state(room.clients["hosty"], room.space_id)["listener_count"] == 1
    refused(first, {"type": "spaces.raise_hand"}, "not_in_space")
    assert ask(second, {"type": "spaces.raise_hand"})["type"] == "reply"


# Joining again --------------------------------------------------------------------------------


def test_joining_again_keeps_a_speakers_seat_on_a_full_stage_and_their_microphone(room: Room) -> None:
    for number in range(10):
        with_speaker(room, f"speaker{number}")
    ok(room.ws["speaker0"], {"type": "spaces.mute", "muted": False})
    again = ok(room.ws["speaker0"], {"type": "spaces.join", "space_id": room.space_id, "sdp": room.offer})
    assert again["role"] == "speaker"
    assert person(room.clients["hosty"], room.space_id, "speaker0")["muted"] is False


def test_joining_again_keeps_a_raised_hand(room: Room) -> None:
    room.join("lisa")
    ok(room.ws["lisa"], {"type": "spaces.raise_hand"})
    ok(room.ws["lisa"], {"type": "spaces.join", "space_id": room.space_id, "sdp": room.offer})
    assert state(room.clients["hosty"], room.space_id)["hands"] == ["lisa"]


def test_a_refused_offer_to_join_again_leaves_the_member_as_they_were(room: Room) -> None:
    room.join("lisa")
    broken = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    refused(room.ws["lisa"], {"type": "spaces.join", "space_id": room.space_id, "sdp": broken}, "invalid_sdp")
    assert room.role("lisa") == "listener"
    assert ok(room.ws["lisa"], {"type": "spaces.raise_hand"})["type"] == "reply"  # still in: actions work
    assert ok(room.ws["lisa"], {"type": "spaces.leave"})["reason"] == "left"
    assert room.role("lisa") is None


# Restarting -----------------------------------------------------------------------------------


def test_after_a_restart_nobody_is_left_in_a_space_and_nothing_records(tmp_path: Path, offer: str) -> None:
    settings = make_settings(tmp_path / "data", None, plugins={"spaces": {"host_addresses": ["127.0.0.1"]}})
    first = create_app(settings)
    with running(first), ExitStack() as stack:
        kernel = first.state.kernel
        host = sign_up(first, "hosty")
        first.state.test_portal.call(kernel.grant, kernel.user("hosty"), "premium")
        room = Room(first, host, offer, stack)
        room.join("lisa")
        assert room.do("hosty", "record", on=True)["type"] == "reply"
        space_id = room.space_id
    again = create_app(settings)
    # A crash leaves the members present and the Space recording: closing the sockets above marked them left.
    again.state.kernel.db.write(lambda conn: (
        conn.execute(update(members).where(members.c.space_id == space_id).values(left_at=None)),
        conn.execute(update(spaces).where(spaces.c.id == space_id).values(recording=True)),
    ))
    with running(again):
        space = state(sign_up(again, "viewer"), space_id)
    assert space["status"] == "live" and space["recording"] is False
    assert space["stage"] == [] and space["listeners"] == [] and space["listener_count"] == 0
