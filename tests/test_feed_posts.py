"""The feed's posts through the API: length rules, entities, replies, likes, reposts, quotes, deleting, timelines, blocks."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from tests.conftest import UserClient, assert_error, make_operator, sign_up


def write(client: UserClient, text: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/api/feed/posts", json={"text": text, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def ids(client: UserClient, path: str) -> list[int]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return [post["id"] for post in response.json()["results"]]


def test_a_post_is_stored_as_written_and_shown_with_its_author(app: Starlette) -> None:
    alice = sign_up(app, "alice", display_name="Alice")
    post = write(alice, "Hello, world")
    assert post["text"] == "Hello, world" and post["html"] == "Hello, world"
    assert post["author"]["username"] == "alice"
    assert {key: post[key] for key in ("likes", "reposts", "replies", "liked_by_me", "reply_to", "quote_of", "media")} == {
        "likes": 0, "reposts": 0, "replies": 0, "liked_by_me": False, "reply_to": None, "quote_of": None, "media": [],
    }
    assert alice.get(f"/api/feed/posts/{post['id']}").json() == post


def test_length_is_counted_in_characters_people_see(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    family = "👨‍👩‍👧‍👦"  # seven code points, one character
    write(alice, family * 280)
    assert_error(alice.post("/api/feed/posts", json={"text": "é" * 281}), 402, "premium_required")


def test_a_free_user_over_280_characters_gets_the_upsell_and_premium_may_write_long(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    error = assert_error(alice.post("/api/feed/posts", json={"text": "x" * 281}), 402, "premium_required")
    assert error["feature"] == "feed.longform" and error["upgrade_url"] == "/premium?feature=feed.longform"
    make_operator(app, "oscar").post("/api/admin/users/alice/grants", json={"plan": "premium"})
    assert len(write(alice, "x" * 25_000)["text"]) == 25_000
    assert_error(alice.post("/api/feed/posts", json={"text": "x" * 25_001}), 422, "post_too_long")


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_a_blank_post_is_refused(app: Starlette, text: str) -> None:
    alice = sign_up(app, "alice")
    assert_error(alice.post("/api/feed/posts", json={"text": text}), 422, "validation_error")
    assert ids(alice, "/api/feed/home") == []


def test_mentions_hashtags_and_links_render_and_everything_else_is_escaped(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    sign_up(app, "bob_b")
    post = write(alice, 'Hi @bob_b and @nobody_here #Café <b>see</b> https://example.com/a?x=1&y="2"')
    html = post["html"]
    assert '<a href="/@bob_b" class="entity mention">@bob_b</a>' in html
    assert "@nobody_here" in html and 'href="/@nobody_here"' not in html
    assert '<a href="/feed/hashtags/caf%C3%A9" class="entity hashtag">#Café</a>' in html
    assert "&lt;b&gt;see&lt;/b&gt;" in html and "<b>" not in html
    assert 'href="https://example.com/a?x=1&amp;y=' in html and 'rel="nofollow noopener ugc"' in html
    assert post["text"].endswith('y="2"')


def test_javascript_links_are_never_made(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    html = write(alice, "javascript:alert(1) and data:text/html,<script>x</script>")["html"]
    assert "<a" not in html and "&lt;script&gt;" in html


def test_a_mention_notifies_the_mentioned_user(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    post = write(alice, "thanks @bob_b and @alice")
    notes = bob.get("/api/notifications").json()["results"]
    assert [(n["kind"], n["url"]) for n in notes] == [("feed.mention", f"/feed/posts/{post['id']}")]
    assert alice.get("/api/notifications").json()["results"] == []


def test_replies_form_threads_and_notify_the_author(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    root = write(alice, "root")
    reply = write(bob, "first reply", reply_to=root["id"])
    deeper = write(alice, "deeper", reply_to=reply["id"])
    thread = bob.get(f"/api/feed/posts/{reply['id']}/thread").json()
    assert [p["id"] for p in thread["ancestors"]] == [root["id"]]
    assert thread["post"]["id"] == reply["id"]
    assert [p["id"] for p in thread["replies"]] == [deeper["id"]]
    assert alice.get(f"/api/feed/posts/{root['id']}").json()["replies"] == 1
    assert alice.get("/api/notifications").json()["results"][0]["kind"] == "feed.reply"


def test_replying_to_a_missing_post_is_refused_and_writes_nothing(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    assert_error(alice.post("/api/feed/posts", json={"text": "hm", "reply_to": 999}), 422, "unknown_post")
    assert_error(alice.post("/api/feed/posts", json={"text": "hm", "reply_to": 0}), 422, "validation_error")
    assert_error(alice.post("/api/feed/posts", json={"text": "hm", "quote_of": 999}), 422, "unknown_post")
    assert ids(alice, "/api/feed/home") == []


def test_likes_count_once_per_person_and_can_be_taken_back(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    post = write(alice, "like me")
    assert bob.put(f"/api/feed/posts/{post['id']}/like").json()["likes"] == 1
    liked = bob.put(f"/api/feed/posts/{post['id']}/like").json()
    assert liked["likes"] == 1 and liked["liked_by_me"] is True
    assert alice.get(f"/api/feed/posts/{post['id']}").json()["liked_by_me"] is False
    assert bob.delete(f"/api/feed/posts/{post['id']}/like").json()["likes"] == 0


def test_a_repost_reaches_the_reposter_s_followers_once(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    carol = sign_up(app, "carol")
    carol.put("/api/users/bob_b/follow")
    post = write(alice, "worth sharing")
    first = bob.post(f"/api/feed/posts/{post['id']}/repost")
    again = bob.post(f"/api/feed/posts/{post['id']}/repost")
    assert first.status_code == 201 and again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert first.json()["repost_of"]["id"] == post["id"] and first.json()["author"]["username"] == "bob_b"
    assert ids(carol, "/api/feed/home") == [first.json()["id"]]
    assert alice.get(f"/api/feed/posts/{post['id']}").json()["reposts"] == 1


def test_a_quote_post_carries_the_post_it_quotes(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    post = write(alice, "original")
    quote = write(bob, "so true", quote_of=post["id"])
    assert quote["quote_of"]["id"] == post["id"] and quote["quote_of"]["text"] == "original"
    assert alice.get("/api/notifications").json()["results"][0]["kind"] == "feed.quote"


def test_only_the_author_deletes_a_post_and_a_thread_keeps_its_place(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    root = write(alice, "soon gone")
    reply = write(bob, "reply", reply_to=root["id"])
    assert_error(bob.delete(f"/api/feed/posts/{root['id']}"), 403, "forbidden")
    assert alice.delete(f"/api/feed/posts/{root['id']}").status_code == 204
    assert_error(alice.get(f"/api/feed/posts/{root['id']}"), 404, "not_found")
    assert root["id"] not in ids(alice, "/api/feed/explore")
    assert bob.get(f"/api/feed/posts/{reply['id']}/thread").json()["ancestors"] == [{"id": root["id"], "unavailable": True}]


def test_home_holds_the_people_i_follow_and_me_newest_first(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    carol = sign_up(app, "carol")
    alice.put("/api/users/bob_b/follow")
    mine = write(alice, "mine")
    followed = write(bob, "followed")
    write(carol, "not followed")
    assert ids(alice, "/api/feed/home") == [followed["id"], mine["id"]]


def test_timelines_page_by_cursor(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    written = [write(alice, f"post {number}")["id"] for number in range(7)]
    first = alice.get("/api/feed/users/alice?limit=3").json()
    second = alice.get(f"/api/feed/users/alice?limit=3&cursor={first['next_cursor']}").json()
    third = alice.get(f"/api/feed/users/alice?limit=3&cursor={second['next_cursor']}").json()
    seen = [post["id"] for page in (first, second, third) for post in page["results"]]
    assert seen == written[::-1] and third["next_cursor"] is None
    assert_error(alice.get("/api/feed/home?cursor=junk"), 422, "invalid_cursor")


def test_hashtag_timelines_ignore_case(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    tagged = write(alice, "I like #Python")
    write(alice, "no tags here")
    assert ids(alice, "/api/feed/hashtags/python") == [tagged["id"]]
    assert ids(alice, "/api/feed/hashtags/PYTHON") == [tagged["id"]]


def test_cashtag_timelines_hold_the_posts_mentioning_a_symbol_in_any_case(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    tagged = write(alice, "Long $tsla, short $ETH")
    write(alice, "costs $5, not a cashtag; neither is US$TSLA")
    assert ids(alice, "/api/feed/cashtags/TSLA") == [tagged["id"]]
    assert ids(alice, "/api/feed/cashtags/eth") == [tagged["id"]]
    assert ids(alice, "/api/feed/cashtags/5") == []


def test_a_deleted_post_leaves_the_cashtag_timeline(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    tagged = write(alice, "$AAPL")
    assert alice.delete(f"/api/feed/posts/{tagged['id']}").status_code in (200, 204)
    assert ids(alice, "/api/feed/cashtags/AAPL") == []


def test_a_user_timeline_leaves_replies_out_unless_asked(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    post = write(alice, "post")
    reply = write(alice, "reply to self", reply_to=post["id"])
    assert ids(alice, "/api/feed/users/alice") == [post["id"]]
    assert ids(alice, "/api/feed/users/alice?replies=true") == [reply["id"], post["id"]]
    assert_error(alice.get("/api/feed/users/nobody_here"), 404, "not_found")


def test_blocks_hide_posts_both_ways(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    post = write(alice, "hello #everyone")
    bob_post = write(bob, "bob here")
    alice.put("/api/blocks/bob_b")
    assert post["id"] not in ids(bob, "/api/feed/explore")
    assert bob_post["id"] not in ids(alice, "/api/feed/explore")
    assert ids(bob, "/api/feed/hashtags/everyone") == []
    assert_error(bob.get(f"/api/feed/posts/{post['id']}"), 403, "blocked")
    assert_error(bob.put(f"/api/feed/posts/{post['id']}/like"), 403, "blocked")
    assert_error(bob.post("/api/feed/posts", json={"text": "hey", "reply_to": post["id"]}), 403, "blocked")


def test_signed_out_visitors_read_but_do_not_write(app: Starlette, client: Any) -> None:
    alice = sign_up(app, "alice")
    post = write(alice, "public")
    assert client.get(f"/api/feed/posts/{post['id']}").status_code == 200
    assert ids(client, "/api/feed/explore") == [post["id"]]
    assert_error(client.post("/api/feed/posts", json={"text": "x"}), 401, "unauthorized")
    assert_error(client.get("/api/feed/home"), 401, "unauthorized")


def test_attachments_must_be_uploads_at_most_four(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    assert_error(alice.post("/api/feed/posts", json={"text": "pic", "media": [1]}), 422, "unknown_media")
    assert_error(alice.post("/api/feed/posts", json={"text": "pics", "media": [1, 2, 3, 4, 5]}), 422, "validation_error")


def test_followers_with_the_app_open_hear_of_a_new_post(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    bob.put("/api/users/alice/follow")
    with bob.websocket_connect("/ws") as tab:
        tab.receive_json()
        post = write(alice, "fresh")
        assert tab.receive_json() == {"type": "feed.new_post", "post_id": post["id"], "author": "alice"}
