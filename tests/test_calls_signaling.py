"""Calls signaling over /ws: screening, ringing, answering, ending, glare, disconnects and bad messages.

The media itself is in test_calls_media.py; here the SDP is only carried,
so a small but well-formed offer stands in for a browser's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import WebSocketTestSession

from kernel import create_app, utcnow
from plugins.calls.records import Call
from plugins.calls.service import CALLS
from tests.conftest import PASSWORD, UserClient, assert_error, make_operator, make_settings, running, sign_up
from tests.realtime_kit import ask, connect, receive
from tests.redis_kit import until

OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
ANSWER = OFFER.replace("o=- 1 1", "o=- 2 2")
CANDIDATE = {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}


def calls_app(tmp_path: Path, database_url: str | None = None, **calls: Any) -> Starlette:
    options = {"ring_timeout_seconds": 30, "reconnect_grace_seconds": 30, **calls}
    return create_app(make_settings(tmp_path / "data", database_url, plugins={"calls": options}))


@pytest.fixture
def app(tmp_path: Path, database_url: str | None) -> Iterator[Starlette]:
    application = calls_app(tmp_path, database_url)
    with running(application):
        yield application


def premium(app: Starlette, client: UserClient) -> UserClient:
    kernel = app.state.kernel
    app.state.test_portal.call(kernel.grant, kernel.user(client.username), "premium")
    return client


def allow_everyone(client: UserClient) -> None:
    assert client.put("/api/calls/settings", json={"enabled": True, "allow": ["everyone"]}).status_code == 200


def invite(ws: WebSocketTestSession, to: str, call_id: str = "call-1", media: str = "audio") -> dict[str, Any]:
    return ask(ws, {"type": "calls.invite", "call_id": call_id, "to": to, "media": media, "sdp": OFFER})


def answered_call(caller: WebSocketTestSession, callee: WebSocketTestSession) -> None:
    """The caller calls bob_b as call-1 and the callee's tab answers it."""
    invite(caller, "bob_b")
    receive(callee, "calls.incoming")
    ask(callee, {"type": "calls.answer", "call_id": "call-1", "sdp": ANSWER})


def stored(app: Starlette, call_id: str = "call-1") -> Call:
    """The call's row as the database holds it now."""
    call = CALLS.of(app.state.kernel).records.get(call_id)
    assert call is not None
    return call


def sweep(app: Starlette, times: int = 1) -> None:
    """Run the switchboard's sweep ``times`` times, as its background task does every ``sweep_seconds``."""
    for _ in range(times):
        app.state.test_portal.call(CALLS.of(app.state.kernel).switchboard.sweep)


@pytest.fixture
def alice(app: Starlette) -> UserClient:
    return premium(app, sign_up(app, "alice"))


@pytest.fixture
def bob(app: Starlette) -> UserClient:
    client = sign_up(app, "bob_b")
    allow_everyone(client)
    return client


# Who may call --------------------------------------------------------------------------------


def test_call_settings_default_to_people_one_follows_and_contacts(bob: UserClient) -> None:
    carol = sign_up(bob.app, "carol")  # type: ignore[arg-type]
    assert carol.get("/api/calls/settings").json() == {"enabled": True, "allow": ["following", "contacts"]}


def test_call_settings_refuse_an_unknown_choice_and_keep_the_old_ones(bob: UserClient) -> None:
    assert_error(bob.put("/api/calls/settings", json={"enabled": True, "allow": ["friends"]}), 422, "validation_error")
    assert_error(bob.put("/api/calls/settings", json={"enabled": "yes", "allow": []}), 422, "validation_error")
    assert bob.get("/api/calls/settings").json() == {"enabled": True, "allow": ["everyone"]}


@pytest.mark.parametrize(
    ("allow", "relation", "expected"),
    [
        (["following", "contacts"], None, "not_allowed"),
        (["following", "contacts"], "follows", None),
        (["following", "contacts"], "contact", None),
        (["following"], "contact", "not_allowed"),
        (["contacts"], "follows", "not_allowed"),
        (["everyone"], None, None),
        ([], "follows", "not_allowed"),
        (["verified"], None, None),  # premium gives the verified badge
    ],
)
def test_screening_lets_through_exactly_whom_the_callee_allows(
    app: Starlette, alice: UserClient, allow: list[str], relation: str | None, expected: str | None
) -> None:
    dana = sign_up(app, "dana")
    assert dana.put("/api/calls/settings", json={"enabled": True, "allow": allow}).status_code == 200
    if relation == "follows":
        assert dana.put("/api/users/alice/follow").status_code == 200
    elif relation == "contact":
        assert dana.put("/api/contacts/alice", json={}).status_code in (200, 201)
    answer = alice.get("/api/calls/can-call/dana").json()
    assert answer["allowed"] is (expected is None)
    assert answer["reason"] == expected


def test_verified_screening_refuses_a_caller_without_the_badge(tmp_path: Path) -> None:
    # Calls moved into the free plan: a free caller may call, but carries no badge.
    settings = make_settings(tmp_path / "data", plans={"free": {"features": ["calls.audio", "calls.video"]}})
    app = create_app(settings)
    with running(app):
        frank, dana = sign_up(app, "frank"), sign_up(app, "dana")
        dana.put("/api/calls/settings", json={"enabled": True, "allow": ["verified"]})
        assert frank.get("/api/calls/can-call/dana").json() == {"allowed": False, "reason": "not_allowed", "media": []}
        dana.put("/api/calls/settings", json={"enabled": True, "allow": ["verified", "everyone"]})
        assert frank.get("/api/calls/can-call/dana").json()["allowed"] is True


def test_a_free_caller_is_refused_with_the_premium_upsell(app: Starlette, bob: UserClient) -> None:
    free = sign_up(app, "frank")
    assert free.get("/api/calls/can-call/bob_b").json() == {"allowed": False, "reason": "premium_required", "media": []}
    with connect(free) as ws:
        error = invite(ws, "bob_b")
    assert error["type"] == "error" and error["code"] == "premium_required"
    assert error["feature"] == "calls.audio" and error["upgrade_url"] == "/premium?feature=calls.audio"


def test_blocks_refuse_calls_both_ways(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    assert bob.put("/api/blocks/alice").status_code == 204
    assert alice.get("/api/calls/can-call/bob_b").json()["reason"] == "blocked"
    assert bob.delete("/api/blocks/alice").status_code == 204
    assert alice.put("/api/blocks/bob_b").status_code == 204
    assert alice.get("/api/calls/can-call/bob_b").json()["reason"] == "blocked"


def test_calls_turned_off_refuse_everyone(alice: UserClient, bob: UserClient) -> None:
    bob.put("/api/calls/settings", json={"enabled": False, "allow": ["everyone"]})
    assert alice.get("/api/calls/can-call/bob_b").json() == {"allowed": False, "reason": "calls_off", "media": []}


def test_calling_an_unknown_user_or_oneself_is_refused(alice: UserClient) -> None:
    assert alice.get("/api/calls/can-call/nobody_here").json()["reason"] == "unknown_user"
    assert alice.get("/api/calls/can-call/alice").json()["reason"] == "self"


def test_video_needs_its_own_feature(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", plans={"free": {"features": ["calls.audio"]}})
    app = create_app(settings)
    with running(app):
        frank, dana = sign_up(app, "frank"), sign_up(app, "dana")
        allow_everyone(dana)
        assert frank.get("/api/calls/can-call/dana?media=video").json() == {"allowed": False, "reason": "premium_required", "media": ["audio"]}
        with connect(frank) as ws:
            assert invite(ws, "dana", media="video")["code"] == "premium_required"


# Ringing and answering --------------------------------------------------------------------------


def test_an_invite_rings_every_connection_of_the_callee_and_the_first_answer_wins(alice: UserClient, bob: UserClient) -> None:
    with connect(alice) as caller, connect(bob) as phone, connect(bob) as laptop:
        reply = invite(caller, "bob_b", media="video")
        assert reply["type"] == "reply" and reply["call"]["state"] == "ringing" and reply["call"]["media"] == "video"
        for tab in (phone, laptop):
            incoming = receive(tab, "calls.incoming")
            assert incoming["call_id"] == "call-1" and incoming["caller"]["username"] == "alice"
            assert incoming["sdp"] == OFFER and incoming["media"] == "video" and 0 < incoming["lifetime_ms"] <= 30_000
        assert ask(phone, {"type": "calls.ringing", "call_id": "call-1"})["type"] == "reply"
        assert receive(caller, "calls.ringing")["call_id"] == "call-1"
        answered = ask(laptop, {"type": "calls.answer", "call_id": "call-1", "sdp": ANSWER})
        assert answered["call"]["state"] == "answered"
        assert receive(caller, "calls.answered") == {"type": "calls.answered", "call_id": "call-1", "sdp": ANSWER}
        assert receive(phone, "calls.ended")["reason"] == "answered_elsewhere"
        late = ask(phone, {"type": "calls.answer", "call_id": "call-1", "sdp": ANSWER})
        assert late["type"] == "error" and late["code"] == "already_answered"


def test_candidates_reach_the_answering_connection_and_the_caller(alice: UserClient, bob: UserClient) -> None:
    with connect(alice) as caller, connect(bob) as phone, connect(bob) as laptop:
        invite(caller, "bob_b")
        receive(phone, "calls.incoming"), receive(laptop, "calls.incoming")
        ask(laptop, {"type": "calls.answer", "call_id": "call-1", "sdp": ANSWER})
        receive(phone, "calls.ended")
        assert ask(caller, {"type": "calls.candidate", "call_id": "call-1", "candidate": CANDIDATE})["type"] == "reply"
        assert receive(laptop, "calls.candidate")["candidate"] == CANDIDATE
        assert ask(laptop, {"type": "calls.candidate", "call_id": "call-1", "candidate": None})["type"] == "reply"
        assert receive(caller, "calls.candidate") == {"type": "calls.candidate", "call_id": "call-1", "candidate": None}
        refused = ask(phone, {"type": "calls.candidate", "call_id": "call-1", "candidate": CANDIDATE})
        assert refused["code"] == "not_your_turn"


def test_renegotiation_passes_between_the_parties(alice: UserClient, bob: UserClient) -> None:
    with connect(alice) as caller, connect(bob) as callee:
        answered_call(caller, callee)
        ask(caller, {"type": "calls.renegotiate", "call_id": "call-1", "sdp": OFFER, "sdp_type": "offer"})
        assert receive(callee, "calls.renegotiate") == {"type": "calls.renegotiate", "call_id": "call-1", "sdp": OFFER, "sdp_type": "offer"}


def test_a_tab_opened_while_it_rings_rings_too(alice: UserClient, bob: UserClient) -> None:
    with connect(alice) as caller, connect(bob) as first:
        invite(caller, "bob_b")
        receive(first, "calls.incoming")
        with connect(bob) as later:
            incoming = receive(later, "calls.incoming")
            assert incoming["call_id"] == "call-1" and incoming["sdp"] == OFFER
            assert ask(later, {"type": "calls.answer", "call_id": "call-1", "sdp": ANSWER})["call"]["state"] == "answered"


# Ending -----------------------------------------------------------------------------------------


def test_a_rejected_call_ends_for_the_caller(alice: UserClient, bob: UserClient) -> None:
    with connect(alice) as caller, connect(bob) as callee:
        invite(caller, "bob_b")
        receive(callee, "calls.incoming")
        assert ask(callee, {"type": "calls.reject", "call_id": "call-1"})["type"] == "reply"
        ended = receive(caller, "calls.ended")
    assert ended == {"type": "calls.ended", "call_id": "call-1", "reason": "rejected", "by": "bob_b"}
    assert alice.get("/api/calls/calls/call-1").json()["end_reason"] == "rejected"


def test_hanging_up_before_an_answer_cancels_and_counts_as_missed(alice: UserClient, bob: UserClient) -> None:
    with connect(alice) as caller, connect(bob) as callee:
        invite(caller, "bob_b")
        receive(callee, "calls.incoming")
        ask(caller, {"type": "calls.hangup", "call_id": "call-1"})
        assert receive(callee, "calls.ended")["reason"] == "cancelled"
        assert receive(callee, "kernel.notification")["notification"]["kind"] == "calls.missed"
    assert bob.get("/api/calls/history").json()["results"][0]["missed"] is True


def test_hanging_up_an_answered_call_ends_it_for_both_with_its_duration(alice: UserClient, bob: UserClient) -> None:
    with connect(alice) as caller, connect(bob) as callee:
        answered_call(caller, callee)
        ask(callee, {"type": "calls.hangup", "call_id": "call-1", "reason": "hangup"})
        assert receive(caller, "calls.ended") == {"type": "calls.ended", "call_id": "call-1", "reason": "hangup", "by": "bob_b"}
        again = ask(caller, {"type": "calls.hangup", "call_id": "call-1"})
        assert again["code"] == "call_ended"
    record = alice.get("/api/calls/calls/call-1").json()
    assert record["state"] == "ended" and record["answered_at"] and record["ended_at"] and record["duration_seconds"] == 0
    assert record["missed"] is False and record["direction"] == "outgoing"


def test_an_unanswered_call_times_out_with_a_missed_call_notification(tmp_path: Path) -> None:
    app = calls_app(tmp_path, ring_timeout_seconds=0.5)
    with running(app):
        alice, bob = premium(app, sign_up(app, "alice")), sign_up(app, "bob_b")
        allow_everyone(bob)
        with connect(alice) as caller, connect(bob) as callee:
            invite(caller, "bob_b")
            receive(callee, "calls.incoming")
            assert receive(caller, "calls.ended")["reason"] == "timeout"
            assert receive(callee, "calls.ended")["reason"] == "timeout"
            notification = receive(callee, "kernel.notification")["notification"]
    assert notification["kind"] == "calls.missed" and notification["actor"]["username"] == "alice"
    assert notification["text"] == "Missed call from alice (@alice)"


def test_a_callee_with_no_open_connection_is_unavailable_and_gets_a_missed_call(alice: UserClient, bob: UserClient) -> None:
    with connect(alice) as caller:
        reply = invite(caller, "bob_b")
        assert reply["call"]["state"] in ("ringing", "ended")
        assert receive(caller, "calls.ended")["reason"] == "unavailable"
    # The note is written just after the caller is told: give it a moment on a loaded machine.
    deadline = time.monotonic() + 10
    while not (notes := bob.get("/api/notifications").json()["results"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert notes[0]["kind"] == "calls.missed"
    assert bob.get("/api/calls/history").json()["results"][0]["missed"] is True


def test_a_callee_already_in_a_call_is_busy(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    carol = premium(app, sign_up(app, "carol"))
    with connect(alice) as first, connect(bob) as callee, connect(carol) as second:
        answered_call(first, callee)
        invite(second, "bob_b", call_id="call-2")
        assert receive(second, "calls.ended") == {"type": "calls.ended", "call_id": "call-2", "reason": "busy", "by": None}
        assert ask(callee, {"type": "kernel.ping"})["type"] == "kernel.pong", "bob's call went on undisturbed"
        assert alice.get("/api/calls/calls/call-1").json()["state"] == "answered"


def test_a_caller_in_a_call_cannot_place_another(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    carol = sign_up(app, "carol")
    allow_everyone(carol)
    with connect(alice) as caller, connect(bob), connect(carol):
        invite(caller, "bob_b")
        assert invite(caller, "carol", call_id="call-2")["code"] == "in_call"


def test_glare_keeps_the_call_whose_id_sorts_first(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    premium(app, bob)
    allow_everyone(alice)
    with connect(alice) as a, connect(bob) as b:
        invite(a, "bob_b", call_id="zzz-alice")
        receive(b, "calls.incoming")
        reply = invite(b, "alice", call_id="aaa-bob")
        assert reply["call"]["state"] == "ringing", "bob's call sorts first and survives"
        assert receive(a, "calls.ended") == {"type": "calls.ended", "call_id": "zzz-alice", "reason": "glare", "by": None}
        assert receive(a, "calls.incoming")["call_id"] == "aaa-bob"
        assert ask(a, {"type": "calls.answer", "call_id": "aaa-bob", "sdp": ANSWER})["call"]["state"] == "answered"


def test_glare_ends_the_later_invite_when_it_sorts_last(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    premium(app, bob)
    allow_everyone(alice)
    with connect(alice) as a, connect(bob) as b:
        invite(a, "bob_b", call_id="aaa-alice")
        receive(b, "calls.incoming")
        invite(b, "alice", call_id="zzz-bob")
        assert receive(b, "calls.ended") == {"type": "calls.ended", "call_id": "zzz-bob", "reason": "glare", "by": None}
        assert alice.get("/api/calls/calls/aaa-alice").json()["state"] == "ringing"


def test_a_party_that_stays_disconnected_past_the_grace_period_ends_the_call(tmp_path: Path) -> None:
    app = calls_app(tmp_path, reconnect_grace_seconds=0.3)
    with running(app):
        alice, bob = premium(app, sign_up(app, "alice")), sign_up(app, "bob_b")
        allow_everyone(bob)
        with connect(bob) as callee:
            with connect(alice) as caller:
                answered_call(caller, callee)
            assert receive(callee, "calls.ended") == {"type": "calls.ended", "call_id": "call-1", "reason": "disconnected", "by": "alice"}


def test_a_party_that_resumes_within_the_grace_period_keeps_the_call(tmp_path: Path) -> None:
    # A grace far longer than the resume takes, even on a loaded machine; the deadline itself is what is checked.
    app = calls_app(tmp_path, reconnect_grace_seconds=5)
    with running(app):
        alice, bob = premium(app, sign_up(app, "alice")), sign_up(app, "bob_b")
        allow_everyone(bob)
        with connect(bob) as callee:
            with connect(alice) as caller:
                answered_call(caller, callee)
            until(lambda: stored(app).caller_grace_until is not None, "the caller's drop giving her a deadline")
            with connect(alice) as again:
                assert ask(again, {"type": "calls.resume", "call_id": "call-1"})["call"]["state"] == "answered"
                # No deadline is left to end the call later, whichever process sweeps.
                assert stored(app).caller_grace_until is None
                sweep(app)
                assert alice.get("/api/calls/calls/call-1").json()["state"] == "answered"
                ask(again, {"type": "calls.candidate", "call_id": "call-1", "candidate": CANDIDATE})
                assert receive(callee, "calls.candidate")["candidate"] == CANDIDATE


def test_a_callee_whose_socket_drops_keeps_the_call_through_every_sweep_and_resumes_it(tmp_path: Path) -> None:
    app = calls_app(tmp_path, reconnect_grace_seconds=30)
    with running(app):
        alice, bob = premium(app, sign_up(app, "alice")), sign_up(app, "bob_b")
        allow_everyone(bob)
        with connect(alice) as caller:
            with connect(bob) as callee:
                answered_call(caller, callee)
            until(lambda: stored(app).callee_grace_until is not None, "the callee's drop giving her a deadline")
            sweep(app, times=10)  # inside the grace: none may take the callee's absence for the end
            assert alice.get("/api/calls/calls/call-1").json()["state"] == "answered"
            with connect(bob) as again:
                assert ask(again, {"type": "calls.resume", "call_id": "call-1"})["call"]["state"] == "answered"
                ask(caller, {"type": "calls.candidate", "call_id": "call-1", "candidate": CANDIDATE})
                assert receive(again, "calls.candidate")["candidate"] == CANDIDATE


def test_the_sweep_lifts_a_deadline_from_a_party_whose_socket_is_open_here(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    # Such a deadline comes from Redis having lost the socket's presence (a restart): a party whose
    # socket never dropped sends no calls.resume, so without the sweep the call would end under it.
    with connect(alice) as caller, connect(bob) as callee:
        answered_call(caller, callee)
        call = stored(app)
        assert call.callee_connection is not None
        records = CALLS.of(app.state.kernel).records
        assert records.start_grace("call-1", "callee", call.callee_connection, utcnow() + timedelta(seconds=30)) is not None

        sweep(app)

        assert stored(app).callee_grace_until is None
        ask(callee, {"type": "calls.hangup", "call_id": "call-1"})
        assert receive(caller, "calls.ended")["reason"] == "hangup"


def test_an_answered_call_outlives_a_restart_of_a_one_process_deployment(tmp_path: Path) -> None:
    first = calls_app(tmp_path, reconnect_grace_seconds=30)
    with running(first):
        alice, bob = premium(first, sign_up(first, "alice")), sign_up(first, "bob_b")
        allow_everyone(bob)
        with connect(alice) as caller, connect(bob) as callee:
            answered_call(caller, callee)
    # The same deployment comes back (a deploy): its parties resume the call there, within their grace.
    second = calls_app(tmp_path, reconnect_grace_seconds=30)
    with running(second), connect(log_in(second, "alice")) as caller, connect(log_in(second, "bob_b")) as callee:
        assert ask(caller, {"type": "calls.resume", "call_id": "call-1"})["call"]["state"] == "answered"
        assert ask(callee, {"type": "calls.resume", "call_id": "call-1"})["call"]["state"] == "answered"
        ask(callee, {"type": "calls.hangup", "call_id": "call-1"})
        assert receive(caller, "calls.ended") == {"type": "calls.ended", "call_id": "call-1", "reason": "hangup", "by": "bob_b"}


def log_in(app: Starlette, username: str) -> UserClient:
    """A client of ``app`` holding a new session of ``username``'s, as :func:`sign_up` gives for a new user."""
    client = UserClient(app, raise_server_exceptions=False)
    client.portal = app.state.test_portal
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    client.username = username
    return client


# Bad messages -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "calls.answer", "call_id": "no-such-call", "sdp": ANSWER}, "unknown_call"),
        ({"type": "calls.hangup", "call_id": "no-such-call"}, "unknown_call"),
        ({"type": "calls.invite", "call_id": "c2", "to": "bob_b", "media": "audio", "sdp": "hello there"}, "invalid_sdp"),
        ({"type": "calls.invite", "call_id": "c2", "to": "bob_b", "media": "hologram", "sdp": OFFER}, "validation_error"),
        ({"type": "calls.invite", "call_id": 7, "to": "bob_b", "media": "audio", "sdp": OFFER}, "validation_error"),
        ({"type": "calls.invite", "call_id": "c 2/..", "to": "bob_b", "media": "audio", "sdp": OFFER}, "validation_error"),
        ({"type": "calls.invite", "call_id": "c2", "to": ["bob_b"], "media": "audio", "sdp": OFFER}, "validation_error"),
        ({"type": "calls.invite", "call_id": "c2", "to": "bob_b", "media": "audio", "sdp": OFFER + "a=x\r\n" * 7000}, "validation_error"),
        ({"type": "calls.invite", "call_id": "c2", "to": "bob_b", "media": "audio", "sdp": OFFER + "a=x\r\n" * 14000}, "message_too_large"),
        ({"type": "calls.candidate", "call_id": "call-1", "candidate": "not an object"}, "validation_error"),
        ({"type": "calls.candidate", "call_id": "call-1"}, "validation_error"),
        ({"type": "calls.hangup", "call_id": "call-1", "reason": "because"}, "validation_error"),
        ({"type": "calls.invite", "call_id": "call-1", "to": "bob_b", "media": "audio", "sdp": OFFER}, "call_exists"),
    ],
)
def test_a_bad_message_gets_an_error_and_leaves_other_calls_alone(
    app: Starlette, alice: UserClient, bob: UserClient, message: dict[str, Any], code: str
) -> None:
    carol = premium(app, sign_up(app, "carol"))
    with connect(alice) as caller, connect(bob) as callee, connect(carol) as stranger:
        invite(caller, "bob_b")
        receive(callee, "calls.incoming")
        error = ask(stranger, message)
        assert error["type"] == "error" and error["code"] == code, error
        answered = ask(callee, {"type": "calls.answer", "call_id": "call-1", "sdp": ANSWER})
        assert answered["call"]["state"] == "answered"


def test_another_users_call_id_is_an_unknown_call(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    carol = premium(app, sign_up(app, "carol"))
    with connect(alice) as caller, connect(bob) as callee, connect(carol) as stranger:
        invite(caller, "bob_b")
        receive(callee, "calls.incoming")
        for kind in ("calls.hangup", "calls.reject", "calls.ringing", "calls.resume"):
            assert ask(stranger, {"type": kind, "call_id": "call-1"})["code"] == "unknown_call"
        assert ask(stranger, {"type": "calls.candidate", "call_id": "call-1", "candidate": CANDIDATE})["code"] == "unknown_call"
        assert_error(carol.get("/api/calls/calls/call-1"), 404, "unknown_call")
        assert ask(callee, {"type": "calls.answer", "call_id": "call-1", "sdp": ANSWER})["call"]["state"] == "answered"


def test_a_caller_cannot_answer_their_own_call(alice: UserClient, bob: UserClient) -> None:
    with connect(alice) as caller, connect(bob) as callee:
        invite(caller, "bob_b")
        receive(callee, "calls.incoming")
        assert ask(caller, {"type": "calls.answer", "call_id": "call-1", "sdp": ANSWER})["code"] == "not_your_turn"


# Records ------------------------------------------------------------------------------------------


def test_history_lists_calls_newest_first_with_a_cursor(alice: UserClient, bob: UserClient) -> None:
    with connect(alice) as caller, connect(bob) as callee:
        for number in range(3):
            invite(caller, "bob_b", call_id=f"call-{number}")
            receive(callee, "calls.incoming")
            ask(caller, {"type": "calls.hangup", "call_id": f"call-{number}"})
            receive(callee, "calls.ended")
    first = alice.get("/api/calls/history?limit=2").json()
    assert [call["call_id"] for call in first["results"]] == ["call-2", "call-1"]
    rest = alice.get(f"/api/calls/history?limit=2&cursor={first['next_cursor']}").json()
    assert [call["call_id"] for call in rest["results"]] == ["call-0"] and rest["next_cursor"] is None
    theirs = bob.get("/api/calls/history").json()["results"][0]
    assert theirs["direction"] == "incoming" and theirs["missed"] is True and theirs["caller"]["username"] == "alice"
    assert_error(alice.get("/api/calls/history?cursor=garbage"), 422, "invalid_cursor")


def test_the_ice_servers_are_empty_unless_the_operator_names_some(alice: UserClient) -> None:
    answer = alice.get("/api/calls/ice-servers")
    assert answer.json()["iceServers"] == [] and answer.headers["cache-control"] == "no-store"


def test_the_calls_api_needs_a_signed_in_user(app: Starlette) -> None:
    from starlette.testclient import TestClient

    anonymous = TestClient(app)
    for path in ("/api/calls/settings", "/api/calls/history", "/api/calls/ice-servers", "/api/calls/can-call/bob_b"):
        assert_error(anonymous.get(path), 401, "unauthorized")


def test_switching_calls_off_ends_live_calls_and_refuses_new_ones(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    operator = make_operator(app, "oscar")
    with connect(alice) as caller, connect(bob) as callee:
        answered_call(caller, callee)
        assert operator.post("/api/admin/plugins/calls/disable").status_code == 200
        assert receive(caller, "calls.ended")["reason"] == "plugin_disabled"
        assert invite(caller, "bob_b", call_id="call-2")["code"] == "plugin_disabled"


def test_the_reply_comes_before_the_end_it_causes(alice: UserClient, bob: UserClient) -> None:
    with connect(alice) as caller, connect(bob) as callee:
        invite(caller, "bob_b")
        receive(callee, "calls.incoming")
        caller.send_json({"type": "calls.hangup", "id": "bye", "call_id": "call-1"})
        assert caller.receive_json() == {"type": "reply", "ref": "bye"}
        assert caller.receive_json()["type"] == "calls.ended"
