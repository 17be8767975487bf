"""The global address book through the API: users, directory, follows, contacts and blocks."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.conftest import PASSWORD, LiveServer, UserClient, assert_error, sign_up


def usernames(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    return [user["username"] for user in response.json()["results"]]


def test_user_lookup_is_case_insensitive(alice: UserClient, client: TestClient) -> None:
    response = client.get("/api/users/ALICE")
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert response.json()["display_name"] == "Alice Liddell"


def test_unknown_user_is_404_in_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/api/users/nobody_home"), 404, "not_found")


def test_directory_searches_usernames_and_display_names_by_prefix(app: Starlette, client: TestClient) -> None:
    sign_up(app, "zed_one", display_name="Marge Simpson")
    sign_up(app, "margie", display_name="Zed Two")
    sign_up(app, "homer", display_name="Homer")
    # Ordered by the name that matched: "marge simpson" < "margie", "zed two" < "zed_one".
    assert usernames(client.get("/api/directory", params={"q": "mar"})) == ["zed_one", "margie"]
    assert usernames(client.get("/api/directory", params={"q": "ZED"})) == ["margie", "zed_one"]
    assert usernames(client.get("/api/directory", params={"q": "@homer"})) == ["homer"]
    assert usernames(client.get("/api/directory", params={"q": "simpson"})) == []


def test_directory_puts_an_exact_username_match_first(app: Starlette, client: TestClient) -> None:
    sign_up(app, "aaron", display_name="Anne")
    sign_up(app, "anne_b", display_name="Zoe")
    sign_up(app, "anne", display_name="Someone")
    assert usernames(client.get("/api/directory", params={"q": "Anne"})) == ["anne", "aaron", "anne_b"]


def test_directory_lists_each_user_once(app: Starlette, client: TestClient) -> None:
    sign_up(app, "maxwell", display_name="Maxwell")
    assert usernames(client.get("/api/directory", params={"q": "max"})) == ["maxwell"]


def test_directory_pages_through_every_match_without_repeats(app: Starlette, client: TestClient) -> None:
    for i in range(7):
        sign_up(app, f"page{i}", display_name=f"Pager {i}")
    sign_up(app, "other", display_name="Page turner")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"q": "pag", "limit": "3", **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/directory", params=params).json()
        assert len(body["results"]) <= 3
        seen += [user["username"] for user in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([f"page{i}" for i in range(7)] + ["other"])
    assert len(seen) == len(set(seen))


def test_directory_limit_is_at_most_50(client: TestClient) -> None:
    error = assert_error(client.get("/api/directory", params={"q": "a", "limit": "51"}), 422, "validation_error")
    assert error["field"] == "limit"
    assert client.get("/api/directory", params={"q": "a", "limit": "50"}).status_code == 200


def test_directory_refuses_a_forged_cursor(client: TestClient) -> None:
    error = assert_error(client.get("/api/directory", params={"q": "a", "cursor": "not-a-cursor"}), 422, "invalid_cursor")
    assert error["field"] == "cursor"


def test_empty_query_finds_no_one(alice: UserClient, client: TestClient) -> None:
    assert client.get("/api/directory", params={"q": ""}).json() == {"results": [], "next_cursor": None}


def test_follow_updates_counts_and_lists(alice: UserClient, bob: UserClient, client: TestClient) -> None:
    response = alice.put("/api/users/bob_b/follow")
    assert response.status_code == 200
    assert response.json()["followers"] == 1
    assert alice.put("/api/users/BOB_B/follow").status_code == 200  # idempotent
    assert client.get("/api/users/bob_b").json()["followers"] == 1
    assert client.get("/api/users/alice").json()["following"] == 1
    assert usernames(client.get("/api/users/bob_b/followers")) == ["alice"]
    assert usernames(client.get("/api/users/alice/following")) == ["bob_b"]


def test_unfollow_removes_the_follow(alice: UserClient, bob: UserClient, client: TestClient) -> None:
    alice.put("/api/users/bob_b/follow")
    assert alice.delete("/api/users/bob_b/follow").status_code == 200
    assert client.get("/api/users/bob_b").json()["followers"] == 0
    assert usernames(client.get("/api/users/bob_b/followers")) == []


def test_following_oneself_is_refused(alice: UserClient) -> None:
    assert_error(alice.put("/api/users/alice/follow"), 422, "cannot_follow_self")


def test_following_needs_sign_in(alice: UserClient, client: TestClient) -> None:
    assert_error(client.put("/api/users/alice/follow"), 401, "unauthorized")


def test_following_an_unknown_user_is_404(alice: UserClient) -> None:
    assert_error(alice.put("/api/users/nobody_home/follow"), 404, "not_found")


def test_follower_lists_page_with_cursors(app: Starlette, bob: UserClient, client: TestClient) -> None:
    for i in range(5):
        sign_up(app, f"fan{i}").put("/api/users/bob_b/follow")
    first = client.get("/api/users/bob_b/followers", params={"limit": "3"}).json()
    second = client.get("/api/users/bob_b/followers", params={"limit": "3", "cursor": first["next_cursor"]}).json()
    names = [user["username"] for user in first["results"] + second["results"]]
    assert sorted(names) == [f"fan{i}" for i in range(5)]
    assert second["next_cursor"] is None


def test_contacts_can_be_added_renamed_listed_and_removed(alice: UserClient, bob: UserClient) -> None:
    added = alice.put("/api/contacts/bob_b", json={"nickname": "Bobby"})
    assert added.status_code == 201
    assert added.json()["nickname"] == "Bobby"
    assert alice.put("/api/contacts/bob_b", json={"nickname": "Builder"}).status_code == 200
    listed = alice.get("/api/contacts").json()
    assert [(item["user"]["username"], item["nickname"]) for item in listed["results"]] == [("bob_b", "Builder")]
    assert alice.delete("/api/contacts/bob_b").status_code == 204
    assert alice.get("/api/contacts").json()["results"] == []


def test_contacts_are_private(alice: UserClient, bob: UserClient) -> None:
    alice.put("/api/contacts/bob_b", json={})
    assert bob.get("/api/contacts").json()["results"] == []


def test_adding_a_contact_with_no_body_works(alice: UserClient, bob: UserClient) -> None:
    assert alice.put("/api/contacts/bob_b").status_code == 201


def test_block_removes_follows_both_ways(alice: UserClient, bob: UserClient, client: TestClient) -> None:
    alice.put("/api/users/bob_b/follow")
    bob.put("/api/users/alice/follow")
    assert alice.put("/api/blocks/bob_b").status_code == 204
    assert client.get("/api/users/alice").json()["followers"] == 0
    assert client.get("/api/users/alice").json()["following"] == 0
    assert client.get("/api/users/bob_b").json()["followers"] == 0
    assert usernames(alice.get("/api/blocks")) == ["bob_b"]


def test_blocked_user_can_no_longer_follow_or_add(alice: UserClient, bob: UserClient) -> None:
    alice.put("/api/blocks/bob_b")
    assert_error(bob.put("/api/users/alice/follow"), 403, "blocked")
    assert_error(bob.put("/api/contacts/alice", json={}), 403, "blocked")
    assert_error(alice.put("/api/users/bob_b/follow"), 403, "blocked")
    assert bob.get("/api/contacts").json()["results"] == []


def test_block_removes_contacts_both_ways(alice: UserClient, bob: UserClient) -> None:
    alice.put("/api/contacts/bob_b", json={})
    bob.put("/api/contacts/alice", json={})
    bob.put("/api/blocks/alice")
    assert alice.get("/api/contacts").json()["results"] == []
    assert bob.get("/api/contacts").json()["results"] == []


def test_unblock_allows_following_again(alice: UserClient, bob: UserClient) -> None:
    alice.put("/api/blocks/bob_b")
    assert alice.delete("/api/blocks/bob_b").status_code == 204
    assert bob.put("/api/users/alice/follow").status_code == 200
    assert alice.get("/api/blocks").json()["results"] == []


def test_directory_hides_users_on_either_side_of_a_block(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    alice.put("/api/blocks/bob_b")
    assert usernames(alice.get("/api/directory", params={"q": "bob"})) == []
    assert usernames(bob.get("/api/directory", params={"q": "ali"})) == []
    carol = sign_up(app, "carol")
    assert usernames(carol.get("/api/directory", params={"q": "bob"})) == ["bob_b"]


def test_user_lookup_tells_a_signed_in_viewer_the_relationship(alice: UserClient, bob: UserClient) -> None:
    bob.put("/api/users/alice/follow")
    relationship = alice.get("/api/users/bob_b").json()["relationship"]
    assert relationship == {"following": False, "followed_by": True, "in_contacts": False, "blocking": False, "blocked_by": False}


def test_a_follow_racing_a_block_never_survives_it(live_server: LiveServer) -> None:
    async def race(round_: int) -> dict[str, bool]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as a, httpx.AsyncClient(
            base_url=live_server.url, timeout=60
        ) as b:
            for client, name in ((a, f"racer_a{round_}"), (b, f"racer_b{round_}")):
                response = await client.post("/api/auth/signup", json={"username": name, "password": PASSWORD})
                client.headers["X-CSRF-Token"] = response.headers["X-CSRF-Token"]
            await asyncio.gather(a.put(f"/api/users/racer_b{round_}/follow"), b.put(f"/api/blocks/racer_a{round_}"))
            return (await b.get(f"/api/users/racer_a{round_}")).json()["relationship"]

    for round_ in range(4):
        relationship = asyncio.run(race(round_))
        assert relationship["blocking"] is True
        assert relationship["followed_by"] is False
