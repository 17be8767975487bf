"""The Spaces pages through HTTP: the list of live Spaces, the start form, a Space's page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kernel import create_app
from plugins.spaces.models import spaces
from plugins.spaces.service import SPACES
from tests.conftest import UserClient, make_settings, running, sign_up
from tests.test_pages import HTML, csrf_of


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Starlette]:
    # The embedded database only: the pages draw on the service, whose own tests run on PostgreSQL too.
    application = create_app(make_settings(tmp_path / "data", plugins={"spaces": {"host_addresses": ["127.0.0.1"]}}))
    with running(application):
        yield application


@pytest.fixture
def alice(app: Starlette) -> UserClient:
    return sign_up(app, "alice", display_name="Alice Liddell")


@pytest.fixture
def bob(app: Starlette) -> UserClient:
    return sign_up(app, "bob_b", display_name="Bob Builder")


@pytest.fixture
def carol(app: Starlette) -> UserClient:
    return sign_up(app, "carol", display_name="Carol Danvers")


def page(client: TestClient, path: str, status: int = 200) -> str:
    response = client.get(path, headers=HTML)
    assert response.status_code == status, response.text
    return response.text


def create(client: UserClient, title: str = "Morning chat", **body: Any) -> dict[str, Any]:
    response = client.post("/api/spaces", json={"title": title, **body})
    assert response.status_code == 201, response.text
    return response.json()


def start_form(client: UserClient, title: str, starts_at: str = "", tz_offset: str = "") -> httpx.Response:
    """Post the list page's "Start a Space" form as a browser does."""
    token = csrf_of(page(client, "/spaces"))
    data = {"csrf_token": token, "title": title, "starts_at": starts_at, "tz_offset": tz_offset}
    return client.post("/spaces", data=data, headers=HTML, follow_redirects=False)


def listed_titles(text: str) -> list[str]:
    return [html.unescape(title) for title in re.findall(r'class="spaces-item-title"[^>]*><strong>(.*?)</strong>', text)]


def field_error(text: str, field_id: str) -> str | None:
    match = re.search(rf'<p class="field-error" id="{field_id}-error" role="alert">(.*?)</p>', text, re.S)
    return html.unescape(match.group(1)) if match else None


def set_recording(app: Starlette, space_id: int) -> None:
    app.state.kernel.db.write(lambda conn: conn.execute(update(spaces).where(spaces.c.id == space_id).values(recording=True)))


def local_input(moment: datetime) -> str:
    """A time as a datetime-local input sends it."""
    return moment.strftime("%Y-%m-%dT%H:%M")


# The list ---------------------------------------------------------------------------------------


def test_the_navigation_offers_spaces_to_signed_in_users(alice: UserClient) -> None:
    assert '<a href="/spaces"' in page(alice, "/")


def test_the_list_shows_a_live_space_with_its_host_listeners_and_a_join_link(alice: UserClient, bob: UserClient) -> None:
    space = create(alice, "Morning chat")
    text = page(bob, "/spaces")
    assert listed_titles(text) == ["Morning chat"]
    assert "Alice Liddell" in text and "@alice" in text
    assert "0 listening" in text
    assert f'href="/spaces/{space["id"]}" aria-label="Join Morning chat">Join</a>' in text


def test_the_list_puts_spaces_of_people_you_follow_first(alice: UserClient, bob: UserClient, carol: UserClient) -> None:
    create(alice, "Followed host")
    create(carol, "Newer, not followed")
    assert bob.put("/api/users/alice/follow").status_code == 200
    assert listed_titles(page(bob, "/spaces")) == ["Followed host", "Newer, not followed"]


def test_the_list_leaves_out_scheduled_and_ended_spaces(alice: UserClient, bob: UserClient) -> None:
    create(alice, "Later", starts_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    ended = create(alice, "Over")
    assert alice.post(f"/api/spaces/{ended['id']}/end").status_code == 200
    create(alice, "Now")
    assert listed_titles(page(bob, "/spaces")) == ["Now"]


def test_the_list_marks_a_space_being_recorded(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    space = create(alice)
    set_recording(app, space["id"])
    assert 'class="spaces-rec"' in page(bob, "/spaces")


def test_the_list_says_when_nothing_is_live(alice: UserClient) -> None:
    assert "No Spaces are live right now." in page(alice, "/spaces")


def test_an_anonymous_visitor_is_sent_to_log_in(client: TestClient) -> None:
    response = client.get("/spaces", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/spaces"


# Starting a Space -------------------------------------------------------------------------------


def test_the_start_form_creates_a_live_space_and_opens_it(alice: UserClient) -> None:
    response = start_form(alice, "  Friday   standup ")
    assert response.status_code == 303
    space_id = int(response.headers["location"].rsplit("/", 1)[1])
    space = alice.get(f"/api/spaces/{space_id}").json()
    assert space["title"] == "Friday standup"
    assert space["status"] == "live"


def test_the_start_form_schedules_a_space_in_the_writers_time_zone(alice: UserClient) -> None:
    # Typed as 10:00 in UTC−5 (getTimezoneOffset() = 300): 15:00 UTC.
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    response = start_form(alice, "Scheduled", f"{day}T10:00", "300")
    assert response.status_code == 303
    space = alice.get(response.headers["location"].replace("/spaces/", "/api/spaces/")).json()
    assert space["status"] == "scheduled"
    assert space["starts_at"] == f"{day}T15:00:00Z"


def test_a_malformed_time_zone_offset_is_ignored_and_the_time_taken_as_utc(alice: UserClient) -> None:
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    response = start_form(alice, "Scheduled", f"{day}T10:00", "²")
    assert response.status_code == 303
    space = alice.get(response.headers["location"].replace("/spaces/", "/api/spaces/")).json()
    assert space["starts_at"] == f"{day}T10:00:00Z"


def test_the_start_form_refuses_an_empty_title(alice: UserClient) -> None:
    response = start_form(alice, "   ")
    assert response.status_code == 422
    assert field_error(response.text, "space-title") == "Give your Space a title."
    assert alice.get("/api/spaces").json()["results"] == []


def test_the_start_form_refuses_a_start_more_than_14_days_ahead(alice: UserClient) -> None:
    response = start_form(alice, "Too far", local_input(datetime.now(UTC) + timedelta(days=15)), "0")
    assert response.status_code == 422
    assert field_error(response.text, "space-start") == "At most 14 days ahead."
    assert 'value="Too far"' in response.text  # what was typed stays


def test_the_start_form_refuses_a_start_in_the_past(alice: UserClient) -> None:
    response = start_form(alice, "Too late", local_input(datetime.now(UTC) - timedelta(hours=1)), "0")
    assert response.status_code == 422
    assert field_error(response.text, "space-start") == "Must be in the future."


def test_the_start_form_refuses_a_post_without_its_csrf_token(alice: UserClient) -> None:
    response = alice.post("/spaces", data={"title": "Sneaky"}, headers={**HTML, "X-CSRF-Token": ""}, follow_redirects=False)
    assert response.status_code == 403
    assert alice.get("/api/spaces").json()["results"] == []


# A Space's page ---------------------------------------------------------------------------------


def test_a_space_page_shows_title_host_status_and_the_host_on_stage(alice: UserClient, bob: UserClient) -> None:
    space = create(alice, "Morning chat")
    text = page(bob, f"/spaces/{space['id']}")
    assert '<h1 id="space-title">Morning chat</h1>' in text
    assert 'Hosted by <a href="/@alice">Alice Liddell</a>' in text
    assert "data-spaces-status>Live<" in text
    assert "data-spaces-join>Join this Space</button>" in text
    assert "/static/plugins/spaces/spaces.js" in text


def test_a_space_page_marks_recording(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    space = create(alice)
    assert 'data-spaces-rec title="This Space is being recorded" hidden' in page(bob, f"/spaces/{space['id']}")
    set_recording(app, space["id"])
    text = page(bob, f"/spaces/{space['id']}")
    assert 'data-spaces-rec title="This Space is being recorded">REC<' in text


def test_a_scheduled_space_shows_its_start_time_and_no_join_button(alice: UserClient, bob: UserClient) -> None:
    space = create(alice, "Later", starts_at=(datetime.now(UTC) + timedelta(days=3)).isoformat())
    text = page(bob, f"/spaces/{space['id']}")
    assert "data-spaces-status>Scheduled<" in text
    assert f'<time datetime="{space["starts_at"]}"' in text
    assert "This Space hasn't started yet." in html.unescape(text)
    assert "data-spaces-join hidden>" in text


def test_the_host_of_a_scheduled_space_can_start_it_from_its_page(alice: UserClient) -> None:
    space = create(alice, "Later", starts_at=(datetime.now(UTC) + timedelta(days=3)).isoformat())
    text = page(alice, f"/spaces/{space['id']}")
    response = alice.post(f"/spaces/{space['id']}/start", data={"csrf_token": csrf_of(text)}, headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert alice.get(f"/api/spaces/{space['id']}").json()["status"] == "live"


def test_only_the_host_gets_the_end_button(alice: UserClient, bob: UserClient) -> None:
    space = create(alice)
    assert f'action="/spaces/{space["id"]}/end"' in page(alice, f"/spaces/{space['id']}")
    assert f'action="/spaces/{space["id"]}/end"' not in page(bob, f"/spaces/{space['id']}")


def test_ending_a_space_from_its_page_shows_that_it_has_ended(alice: UserClient, bob: UserClient) -> None:
    space = create(alice)
    text = page(alice, f"/spaces/{space['id']}")
    response = alice.post(f"/spaces/{space['id']}/end", data={"csrf_token": csrf_of(text)}, headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    text = page(bob, f"/spaces/{space['id']}")
    assert "This Space has ended" in text
    assert "data-spaces-status>Ended<" in text
    assert "data-spaces-join" not in text


def test_someone_else_cannot_end_the_space_and_is_told_why(alice: UserClient, bob: UserClient) -> None:
    space = create(alice)
    text = page(bob, f"/spaces/{space['id']}")
    response = bob.post(f"/spaces/{space['id']}/end", data={"csrf_token": csrf_of(text)}, headers=HTML, follow_redirects=False)
    assert response.status_code == 403
    assert "Only the host can end the Space." in response.text
    assert alice.get(f"/api/spaces/{space['id']}").json()["status"] == "live"


def test_an_ended_space_offers_its_recordings(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    space = create(alice)
    assert alice.post(f"/api/spaces/{space['id']}/end").status_code == 200
    store = SPACES.of(app.state.kernel).recordings
    take = store.new_path(space["id"], datetime(2026, 11, 21, 15, 2, 0))
    write_silence(take, seconds=95)
    store.publish(space["id"])  # what the recorder's finish starts
    text = page(bob, f"/spaces/{space['id']}")
    assert f'<audio controls preload="none" src="/api/spaces/{space["id"]}/recordings/{take.name}"' in text
    assert "Recording 1 · 1:35" in text


def write_silence(path: Path, seconds: int) -> None:
    """A real Ogg/Opus take of silence, as the mixer's recorder writes them."""
    with av.open(str(path), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48_000)
        stream.codec_context.layout = "mono"
        for index in range(seconds * 50):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), dtype=np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48_000, index * 960
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_an_unknown_space_is_not_found(alice: UserClient) -> None:
    assert "There is no such Space." in page(alice, "/spaces/999", status=404)
    page(alice, "/spaces/not-a-number", status=404)


def test_a_space_whose_host_blocked_you_is_not_found(alice: UserClient, bob: UserClient) -> None:
    space = create(alice)
    assert alice.put("/api/blocks/bob_b").status_code in (200, 201, 204)
    page(bob, f"/spaces/{space['id']}", status=404)


def test_an_anonymous_visitor_of_a_space_is_sent_to_log_in_and_back(alice: UserClient, client: TestClient) -> None:
    space = create(alice)
    response = client.get(f"/spaces/{space['id']}", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/spaces/{space['id']}"


def test_a_space_title_is_shown_as_text_not_markup(alice: UserClient, bob: UserClient) -> None:
    space = create(alice, "<script>alert(1)</script>")
    text = page(bob, f"/spaces/{space['id']}")
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_the_list_shows_ones_upcoming_spaces(alice: UserClient) -> None:
    starts = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    space = alice.post("/api/spaces", json={"title": "Tomorrow's talk", "starts_at": starts}).json()
    page = alice.get("/spaces")
    assert "Upcoming" in page.text and "Tomorrow&#39;s talk" in page.text
    assert f'href="/spaces/{space["id"]}"' in page.text
