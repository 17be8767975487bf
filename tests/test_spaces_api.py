"""The Spaces JSON API: creating, scheduling, listing, reading, starting and ending Spaces."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette

from kernel import create_app
from tests.conftest import UserClient, assert_error, make_settings, running, sign_up
from tests.redis_kit import until


@pytest.fixture
def app(tmp_path: Path, database_url: str | None) -> Iterator[Starlette]:
    application = create_app(
        make_settings(tmp_path / "data", database_url, plugins={"spaces": {"host_addresses": ["127.0.0.1"]}})
    )
    with running(application):
        yield application


@pytest.fixture
def alice(app: Starlette) -> UserClient:
    return sign_up(app, "alice", display_name="Alice Liddell")


@pytest.fixture
def bob(app: Starlette) -> UserClient:
    return sign_up(app, "bob_b")


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def create(client: UserClient, title: str = "Morning chat", **body: object) -> dict:
    response = client.post("/api/spaces", json={"title": title, **body})
    assert response.status_code == 201, response.text
    return response.json()


# Creating -------------------------------------------------------------------------------------


def test_a_space_without_a_start_time_is_live_at_once(alice: UserClient) -> None:
    space = create(alice)
    assert space["status"] == "live"
    assert space["host"]["username"] == "alice"
    assert space["title"] == "Morning chat"
    assert space["recording"] is False
    assert space["listener_count"] == 0
    assert space["started_at"] is not None


def test_a_space_with_a_start_time_is_scheduled(alice: UserClient) -> None:
    space = create(alice, starts_at=later(days=2))
    assert space["status"] == "scheduled"
    assert space["started_at"] is None
    assert space["starts_at"].endswith("Z")


@pytest.mark.parametrize("title", ["", "   ", "x" * 101])
def test_a_title_must_have_1_to_100_characters(alice: UserClient, title: str) -> None:
    error = assert_error(alice.post("/api/spaces", json={"title": title}), 422, "validation_error")
    assert error["field"] == "title"


def test_a_title_of_100_characters_is_accepted(alice: UserClient) -> None:
    assert create(alice, "x" * 100)["title"] == "x" * 100


def test_a_space_cannot_be_scheduled_more_than_14_days_ahead(alice: UserClient) -> None:
    error = assert_error(
        alice.post("/api/spaces", json={"title": "Later", "starts_at": later(days=14, hours=1)}), 422, "validation_error"
    )
    assert error["field"] == "starts_at"


def test_a_space_cannot_be_scheduled_in_the_past(alice: UserClient) -> None:
    assert_error(alice.post("/api/spaces", json={"title": "Past", "starts_at": later(hours=-1)}), 422, "validation_error")


def test_a_malformed_start_time_is_refused(alice: UserClient) -> None:
    assert_error(alice.post("/api/spaces", json={"title": "When", "starts_at": "tomorrow"}), 422, "validation_error")


def test_an_unknown_field_is_refused(alice: UserClient) -> None:
    assert_error(alice.post("/api/spaces", json={"title": "Hi", "speakers": 3}), 422, "validation_error")


def test_creating_needs_a_signed_in_user(app: Starlette) -> None:
    anonymous = UserClient(app, raise_server_exceptions=False)
    assert_error(anonymous.post("/api/spaces", json={"title": "Hi"}), 401, "unauthorized")


# Reading and listing --------------------------------------------------------------------------


def test_anyone_signed_in_can_read_a_space(alice: UserClient, bob: UserClient) -> None:
    space = create(alice)
    found = bob.get(f"/api/spaces/{space['id']}").json()
    assert found["id"] == space["id"]
    assert {"stage", "listeners", "hands", "listener_count", "recording", "limits"} <= set(found)


@pytest.mark.parametrize("space_id", ["999999", "abc", "0", "-1", "²", "0012"])
def test_an_unknown_space_is_404(bob: UserClient, space_id: str) -> None:
    assert_error(bob.get(f"/api/spaces/{space_id}"), 404, "unknown_space")


def test_the_list_shows_live_spaces_of_people_one_follows_first(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    carol = sign_up(app, "carol")
    followed = create(alice, "Alice's")
    other = create(carol, "Carol's")  # newer, but carol is not followed
    assert bob.put("/api/users/alice/follow").status_code == 200
    page = bob.get("/api/spaces").json()
    assert [space["id"] for space in page["results"]] == [followed["id"], other["id"]]
    assert page["next_cursor"] is None


def test_the_list_leaves_out_scheduled_and_ended_spaces(alice: UserClient, bob: UserClient) -> None:
    create(alice, "Soon", starts_at=later(hours=1))
    ended = create(alice, "Over")
    assert alice.post(f"/api/spaces/{ended['id']}/end").status_code == 200
    live = create(alice, "Now")
    assert [space["id"] for space in bob.get("/api/spaces").json()["results"]] == [live["id"]]


def test_the_list_pages_with_a_cursor(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    carol = sign_up(app, "carol")
    assert bob.put("/api/users/carol/follow").status_code == 200
    made = [create(alice, "a1"), create(carol, "c1"), create(alice, "a2"), create(carol, "c2")]
    first = bob.get("/api/spaces", params={"limit": 3}).json()
    second = bob.get("/api/spaces", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    ids = [space["id"] for space in first["results"] + second["results"]]
    assert ids == [made[3]["id"], made[1]["id"], made[2]["id"], made[0]["id"]]
    assert second["next_cursor"] is None


def test_a_bad_cursor_is_refused(bob: UserClient) -> None:
    assert_error(bob.get("/api/spaces", params={"cursor": "nonsense"}), 422, "invalid_cursor")


def test_a_hosts_blocked_user_does_not_see_the_space(alice: UserClient, bob: UserClient) -> None:
    space = create(alice)
    assert alice.put("/api/blocks/bob_b").status_code in (200, 201, 204)
    assert bob.get("/api/spaces").json()["results"] == []
    assert_error(bob.get(f"/api/spaces/{space['id']}"), 404, "unknown_space")


# Starting and ending --------------------------------------------------------------------------


def test_starting_a_scheduled_space_notifies_the_hosts_followers(alice: UserClient, bob: UserClient) -> None:
    assert bob.put("/api/users/alice/follow").status_code == 200
    space = create(alice, "Launch", starts_at=later(hours=3))
    started = alice.post(f"/api/spaces/{space['id']}/start")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "live"
    notes = bob.get("/api/notifications").json()["results"]
    assert [note["kind"] for note in notes if note["kind"].startswith("spaces.")] == ["spaces.started"]
    assert "Launch" in notes[0]["text"]
    assert notes[0]["url"] == f"/spaces/{space['id']}"  # the notification opens the Space


def test_only_the_host_starts_a_space(alice: UserClient, bob: UserClient) -> None:
    space = create(alice, starts_at=later(hours=3))
    assert_error(bob.post(f"/api/spaces/{space['id']}/start"), 403, "forbidden_role")


def test_only_the_host_ends_a_space(alice: UserClient, bob: UserClient) -> None:
    space = create(alice)
    assert_error(bob.post(f"/api/spaces/{space['id']}/end"), 403, "forbidden_role")
    assert bob.get(f"/api/spaces/{space['id']}").json()["status"] == "live"


def test_the_host_ends_a_space(alice: UserClient) -> None:
    space = create(alice)
    ended = alice.post(f"/api/spaces/{space['id']}/end").json()
    assert ended["status"] == "ended"
    assert ended["ended_at"] is not None


def test_an_ended_space_cannot_be_ended_or_started_again(alice: UserClient) -> None:
    space = create(alice)
    assert alice.post(f"/api/spaces/{space['id']}/end").status_code == 200
    assert_error(alice.post(f"/api/spaces/{space['id']}/end"), 410, "space_ended")
    assert_error(alice.post(f"/api/spaces/{space['id']}/start"), 410, "space_ended")


def test_ending_an_unknown_space_is_404(alice: UserClient) -> None:
    assert_error(alice.post("/api/spaces/424242/end"), 404, "unknown_space")


# Recording from the start ----------------------------------------------------------------------


def test_recording_from_the_start_needs_the_record_feature(alice: UserClient) -> None:
    error = assert_error(alice.post("/api/spaces", json={"title": "Taped", "record": True}), 402, "premium_required")
    assert error["feature"] == "spaces.record"
    assert alice.get("/api/spaces").json()["results"] == []


def test_a_scheduled_space_asked_to_record_is_recorded_from_its_start(app: Starlette, alice: UserClient) -> None:
    kernel = app.state.kernel
    app.state.test_portal.call(kernel.grant, kernel.user("alice"), "premium")
    space = create(alice, "Taped", starts_at=later(hours=3), record=True)
    assert space["recording"] is True and space["recordings"] == []
    assert alice.post(f"/api/spaces/{space['id']}/start").json()["recording"] is True
    time.sleep(1.0)
    ended = alice.post(f"/api/spaces/{space['id']}/end").json()
    assert ended["recording"] is False
    # The take ending the Space finished is published in the background: the Space lists it soon after.
    until(lambda: alice.get(f"/api/spaces/{space['id']}").json()["recordings"], "the take is listed")
    [take] = alice.get(f"/api/spaces/{space['id']}").json()["recordings"]
    assert take["duration_seconds"] is not None and take["duration_seconds"] > 0
    assert alice.get(take["url"]).headers["content-type"] == "audio/ogg"


# Upcoming Spaces ------------------------------------------------------------------------------------


def test_upcoming_spaces_are_ones_own_and_those_of_people_followed_soonest_first(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    carol = sign_up(app, "carol")
    later_one = create(alice, "Later", starts_at=later(days=3))
    sooner = create(alice, "Sooner", starts_at=later(days=1))
    create(carol, "Unfollowed", starts_at=later(days=1))
    mine = create(bob, "Mine", starts_at=later(days=2))
    create(alice, "Live now")
    assert bob.put("/api/users/alice/follow").status_code == 200
    upcoming = bob.get("/api/spaces", params={"status": "scheduled"}).json()["results"]
    assert [space["id"] for space in upcoming] == [sooner["id"], mine["id"], later_one["id"]]


def test_an_unknown_list_status_is_refused(bob: UserClient) -> None:
    assert assert_error(bob.get("/api/spaces", params={"status": "ended"}), 422, "validation_error")["field"] == "status"
