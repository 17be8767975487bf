"""The calls plugin's pages through HTTP: the call history, the call page, the settings section, the profile buttons."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kernel import create_app
from tests.conftest import UserClient, make_settings, running, sign_up
from tests.test_calls_signaling import ANSWER, OFFER, allow_everyone, ask, connect, premium
from tests.test_pages import HTML, csrf_of

UPSELL = "Audio and video calls are a premium feature. Subscribe to gain access."


@pytest.fixture
def app(tmp_path: Path, database_url: str | None) -> Iterator[Starlette]:
    application = create_app(make_settings(tmp_path / "data", database_url, plugins={"calls": {"ring_timeout_seconds": 30}}))
    with running(application):
        yield application


def page(client: TestClient, path: str, status: int = 200, **headers: str) -> str:
    response = client.get(path, headers={**HTML, **headers})
    assert response.status_code == status, response.text
    return response.text


def call_unanswered(caller: UserClient, to: str, call_id: str, media: str = "audio") -> dict[str, Any]:
    """A call to someone with no open tab: it ends at once as unavailable, a missed call for them."""
    with connect(caller) as ws:
        reply = ask(ws, {"type": "calls.invite", "call_id": call_id, "to": to, "media": media, "sdp": OFFER})
    assert reply["type"] == "reply", reply
    assert reply["call"]["end_reason"] == "unavailable"
    return reply["call"]


def history_items(text: str) -> list[tuple[str, str]]:
    """The calls a history page lists, in order: (call id, the item's classes)."""
    return [(found[1], found[0]) for found in re.findall(r'<li class="(call-item[^"]*)" data-call-id="([^"]+)"', text)]


def actions_of(text: str) -> list[tuple[str, str]]:
    """The profile card's buttons: (label, href), a lock marked with 🔒."""
    block = re.search(r'<div class="actions">(.*?)</div>', text, re.S)
    assert block, "the profile has an actions row"
    found = []
    for href, label in re.findall(r'<a class="button[^"]*" href="([^"]+)"[^>]*>(.*?)</a>', block.group(1), re.S):
        found.append((re.sub(r"<[^>]+>", "", label).strip(), href.replace("&amp;", "&")))
    return found


def submit_settings(client: UserClient, data: dict[str, str], on: str = "/settings") -> httpx.Response:
    """Post the Calls settings form as the browser does, with the token of the page that shows it."""
    token = csrf_of(page(client, on))
    return client.post("/calls/settings", data={**data, "csrf_token": token}, headers=HTML, follow_redirects=False)


# The history -------------------------------------------------------------------------------


def test_the_history_asks_a_signed_out_visitor_to_log_in(client: TestClient) -> None:
    response = client.get("/calls/", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/calls/"


def test_the_history_marks_missed_calls_for_the_callee_only(app: Starlette) -> None:
    alice = premium(app, sign_up(app, "alice", display_name="Alice Liddell"))
    bob = sign_up(app, "bob_b", display_name="Bob Builder")
    allow_everyone(bob)
    call_unanswered(alice, "bob_b", "call-missed", media="video")

    bobs = page(bob, "/calls/")
    assert history_items(bobs) == [("call-missed", "call-item missed")]
    assert "Missed call" in bobs
    assert "Alice Liddell" in bobs and "↙ Incoming" in bobs and "Video" in bobs

    alices = page(alice, "/calls/")
    assert history_items(alices) == [("call-missed", "call-item")]
    assert "Missed call" not in alices
    assert "Bob Builder" in alices and "↗ Outgoing" in alices and "Not answered" in alices


def test_an_answered_call_shows_how_long_it_lasted_and_is_not_missed(app: Starlette) -> None:
    alice = premium(app, sign_up(app, "alice"))
    bob = sign_up(app, "bob_b")
    allow_everyone(bob)
    with connect(bob) as bob_ws, connect(alice) as alice_ws:
        assert ask(alice_ws, {"type": "calls.invite", "call_id": "call-talk", "to": "bob_b", "media": "audio", "sdp": OFFER})["type"] == "reply"
        assert ask(bob_ws, {"type": "calls.answer", "call_id": "call-talk", "sdp": ANSWER})["type"] == "reply"
        assert ask(alice_ws, {"type": "calls.hangup", "call_id": "call-talk"})["type"] == "reply"
    shown = page(bob, "/calls/")
    assert history_items(shown) == [("call-talk", "call-item")]
    assert re.search(r'<span class="call-outcome">0:0\d</span>', shown)


def test_the_history_pages_on_with_older_calls(app: Starlette) -> None:
    alice = premium(app, sign_up(app, "alice"))
    bob = sign_up(app, "bob_b")
    allow_everyone(bob)
    for number in range(27):
        call_unanswered(alice, "bob_b", f"call-{number:02}")

    first = page(bob, "/calls/")
    assert [call_id for call_id, _ in history_items(first)] == [f"call-{n:02}" for n in range(26, 1, -1)]
    older = re.search(r'<a class="button" href="(/calls/\?cursor=[^"]+)">Older calls</a>', first)
    assert older, "the first page links to older calls"
    second = page(bob, older.group(1).replace("&amp;", "&"))
    assert [call_id for call_id, _ in history_items(second)] == ["call-01", "call-00"]
    assert "Older calls" not in second


def test_calling_back_from_the_history_needs_the_plan(app: Starlette) -> None:
    alice = premium(app, sign_up(app, "alice", display_name="Alice Liddell"))
    bob = sign_up(app, "bob_b", display_name="Bob Builder")
    allow_everyone(bob)
    call_unanswered(alice, "bob_b", "call-missed")
    assert '<a class="button" href="/calls/call?to=bob_b&amp;media=video" aria-label="Video call Bob Builder"' in page(alice, "/calls/")
    assert '<a class="button locked" href="/premium?feature=calls.video"' in page(bob, "/calls/")


def test_a_free_user_is_told_before_dialling_that_calls_need_the_plan(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    shown = page(alice, "/calls/")
    assert 'action="/calls/call"' not in shown
    assert 'href="/premium?feature=calls.audio">🔒 See plans</a>' in shown
    assert 'href="/calls/call?to=echo&amp;media=video"' in shown  # the echo test stays free


def test_a_premium_user_dials_anyone_from_the_history_page(app: Starlette) -> None:
    alice = premium(app, sign_up(app, "alice"))
    shown = page(alice, "/calls/")
    assert 'action="/calls/call"' in shown and "🔒 See plans" not in shown


def test_the_history_says_so_when_there_are_no_calls(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    assert "No calls yet." in page(alice, "/calls/")


# Settings ------------------------------------------------------------------------------------


def test_the_settings_page_has_a_calls_section_with_the_current_choices(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    shown = page(alice, "/settings")
    section = re.search(r'<section class="card" aria-label="Calls">(.*?)</section>', shown, re.S)
    assert section, "the settings page has a Calls section"
    form = section.group(1)
    assert 'action="/calls/settings"' in form
    assert re.search(r'name="enabled" value="1" checked', form)
    # The default: people one follows and one's contacts.
    assert re.search(r'name="who" value="some" checked', form)
    assert re.search(r'name="allow_following" value="1" checked', form)
    assert re.search(r'name="allow_contacts" value="1" checked', form)
    assert not re.search(r'name="allow_verified" value="1" checked', form)


def test_saving_the_calls_section_lets_everyone_call(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    response = submit_settings(alice, {"enabled": "1", "who": "everyone", "next": "/settings"})
    assert response.status_code == 303
    assert response.headers["location"] == "/settings?saved=calls#calls-settings"
    assert alice.get("/api/calls/settings").json() == {"enabled": True, "allow": ["everyone"]}
    assert re.search(r'name="who" value="everyone" checked', page(alice, "/settings"))


def test_saving_the_calls_section_with_some_people_keeps_just_those(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    response = submit_settings(alice, {"enabled": "1", "who": "some", "allow_verified": "1", "allow_contacts": "1"})
    assert response.status_code == 303
    assert alice.get("/api/calls/settings").json() == {"enabled": True, "allow": ["verified", "contacts"]}


def test_unticking_take_calls_turns_calls_off(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    assert submit_settings(alice, {"who": "everyone"}).status_code == 303
    assert alice.get("/api/calls/settings").json() == {"enabled": False, "allow": ["everyone"]}


def test_choosing_only_some_people_but_none_shows_the_form_again_and_saves_nothing(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    response = submit_settings(alice, {"enabled": "1", "who": "some"})
    assert response.status_code == 422
    assert 'role="alert">allow: choose who may call you</p>' in response.text
    assert alice.get("/api/calls/settings").json() == {"enabled": True, "allow": ["following", "contacts"]}


def test_the_calls_settings_form_needs_its_csrf_token(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    response = alice.post("/calls/settings", data={"enabled": "1", "who": "everyone"}, headers={**HTML, "X-CSRF-Token": ""})
    assert response.status_code == 403
    assert alice.get("/api/calls/settings").json()["allow"] == ["following", "contacts"]


def test_the_call_settings_have_a_page_of_their_own(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    response = submit_settings(alice, {"enabled": "1", "who": "everyone", "next": "/calls/settings"}, on="/calls/settings")
    assert response.headers["location"] == "/calls/settings?saved=calls#calls-settings"
    shown = page(alice, response.headers["location"])
    assert 'role="status">Saved.</p>' in shown
    assert re.search(r'name="who" value="everyone" checked', shown)


# The profile's buttons and every page's assets ---------------------------------------------------


def test_a_free_user_sees_locked_call_buttons_that_lead_to_the_upsell(app: Starlette) -> None:
    sign_up(app, "bob_b")
    alice = sign_up(app, "alice")
    shown = page(alice, "/@bob_b")
    buttons = dict(actions_of(shown))
    assert buttons["🔒 Audio call"] == "/premium?feature=calls.audio"
    assert buttons["🔒 Video call"] == "/premium?feature=calls.video"


def test_a_premium_user_sees_call_buttons_that_open_the_call_page(app: Starlette) -> None:
    sign_up(app, "bob_b")
    alice = premium(app, sign_up(app, "alice"))
    buttons = dict(actions_of(page(alice, "/@bob_b")))
    assert buttons["Audio call"] == "/calls/call?to=bob_b&media=audio"
    assert buttons["Video call"] == "/calls/call?to=bob_b&media=video"


def test_nobody_is_offered_a_call_to_themselves(app: Starlette) -> None:
    alice = premium(app, sign_up(app, "alice"))
    assert not [label for label, _ in actions_of(page(alice, "/@alice")) if "call" in label]


def test_a_signed_out_visitor_is_asked_to_log_in_to_call(app: Starlette, client: TestClient) -> None:
    sign_up(app, "bob_b")
    buttons = dict(actions_of(page(client, "/@bob_b")))
    assert buttons["Call"] == "/login?next=/@bob_b"


def test_no_call_buttons_across_a_block(app: Starlette) -> None:
    bob = sign_up(app, "bob_b")
    alice = premium(app, sign_up(app, "alice"))
    assert bob.put("/api/blocks/alice").status_code in (200, 201, 204)
    assert not [label for label, _ in actions_of(page(alice, "/@bob_b")) if "call" in label]


def test_the_echo_test_is_open_to_free_users_from_its_profile(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    buttons = dict(actions_of(page(alice, "/@echo")))
    assert buttons["Video call"] == "/calls/call?to=echo&media=video"


def test_every_page_of_a_signed_in_user_carries_the_call_overlay(app: Starlette, client: TestClient) -> None:
    alice = sign_up(app, "alice")
    shown = page(alice, "/directory")
    assert '<link rel="stylesheet" href="/static/plugins/calls/calls.css">' in shown
    assert '<script src="/static/plugins/calls/calls.js" defer></script>' in shown
    assert alice.get("/static/plugins/calls/calls.js").status_code == 200
    assert "calls.js" not in page(client, "/directory")


def test_the_navigation_leads_to_the_call_history(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    assert '<a href="/calls/"' in page(alice, "/directory")


# The call page -------------------------------------------------------------------------------


def test_the_call_page_tells_a_free_user_that_calls_are_premium(app: Starlette) -> None:
    bob = sign_up(app, "bob_b")
    allow_everyone(bob)
    alice = sign_up(app, "alice")
    shown = page(alice, "/calls/call?to=bob_b&media=video", status=402)
    assert 'data-refusal="premium_required"' in shown
    assert UPSELL in shown
    assert 'href="/premium?feature=calls.video">See plans</a>' in shown
    assert "data-call-page" not in shown


def test_the_call_page_says_when_the_callee_takes_no_calls(app: Starlette) -> None:
    bob = sign_up(app, "bob_b", display_name="Bob Builder")
    assert bob.put("/api/calls/settings", json={"enabled": False, "allow": ["everyone"]}).status_code == 200
    alice = premium(app, sign_up(app, "alice"))
    shown = page(alice, "/calls/call?to=bob_b&media=audio", status=403)
    assert 'data-refusal="calls_off"' in shown
    assert "@bob_b has turned calls off." in shown


def test_the_call_page_says_when_there_is_no_such_user(app: Starlette) -> None:
    alice = premium(app, sign_up(app, "alice"))
    assert "There is no such user." in page(alice, "/calls/call?to=nobody_here&media=audio", status=404)


def test_the_call_page_places_the_call_when_opened_from_this_site(app: Starlette) -> None:
    bob = sign_up(app, "bob_b")
    allow_everyone(bob)
    alice = premium(app, sign_up(app, "alice"))
    shown = page(alice, "/calls/call?to=@bob_b&media=video", **{"sec-fetch-site": "same-origin"})
    assert re.search(r'data-call-page data-to="bob_b" data-media="video" data-autostart', shown)


@pytest.mark.parametrize("came_from", ["cross-site", "same-site", None])
def test_a_call_link_from_another_site_waits_for_a_click(app: Starlette, came_from: str | None) -> None:
    bob = sign_up(app, "bob_b")
    allow_everyone(bob)
    alice = premium(app, sign_up(app, "alice"))
    shown = page(alice, "/calls/call?to=bob_b&media=video", **({"sec-fetch-site": came_from} if came_from else {}))
    assert "data-call-page" in shown and "data-autostart" not in shown
    assert "Start video call" in shown


def test_the_call_page_refuses_a_medium_that_is_not_audio_or_video(app: Starlette) -> None:
    alice = premium(app, sign_up(app, "alice"))
    assert "media: audio or video" in page(alice, "/calls/call?to=bob_b&media=hologram", status=422)


def test_the_call_page_without_anyone_to_call_asks_whom(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    shown = page(alice, "/calls/call")
    assert '<form method="get" action="/calls/call"' in shown and 'name="to"' in shown


def test_the_call_page_asks_a_signed_out_visitor_to_log_in(client: TestClient) -> None:
    response = client.get("/calls/call?to=bob_b&media=audio", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/calls/call%3Fto%3Dbob_b%26media%3Daudio"
