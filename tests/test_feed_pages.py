"""The feed's pages through HTTP: the composer, timelines with "Load more", the post page, hashtags, profiles."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.conftest import UserClient, make_operator, sign_up
from tests.test_pages import HTML, csrf_of

UPSELL = "Posts longer than 280 characters are a premium feature. Subscribe to gain access."


def write(client: UserClient, text: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/api/feed/posts", json={"text": text, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def page(client: TestClient, path: str) -> str:
    response = client.get(path, headers=HTML)
    assert response.status_code == 200, response.text
    return response.text


def submit(client: TestClient, action: str, data: dict[str, str], on: str = "/feed/") -> httpx.Response:
    """Post a form as the browser does: with the CSRF token of the page ``on`` that shows it."""
    return client.post(action, data={**data, "csrf_token": csrf_of(page(client, on))}, headers=HTML, follow_redirects=False)


def post_ids(text: str) -> list[int]:
    """The posts a page lists, in order."""
    return [int(found) for found in re.findall(r'<li class="post-item[^"]*" id="post-(\d+)"', text)]


def home_ids(client: UserClient) -> list[int]:
    return [post["id"] for post in client.get("/api/feed/home").json()["results"]]


def textarea(text: str) -> str:
    match = re.search(r"<textarea[^>]*>(.*?)</textarea>", text, re.S)
    assert match, "the page has a composer"
    return html.unescape(match.group(1))


def test_home_redirects_a_signed_out_visitor_to_log_in(client: TestClient) -> None:
    response = client.get("/feed/", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/feed/"


def test_the_composer_posts_and_goes_back_to_the_timeline(app: Starlette) -> None:
    alice = sign_up(app, "alice", display_name="Alice")
    response = submit(alice, "/feed/posts", {"text": "Hello from the page", "next": "/feed/"})
    assert response.status_code == 303
    assert response.headers["location"] == "/feed/"
    [post_id] = home_ids(alice)
    shown = page(alice, "/feed/")
    assert post_ids(shown) == [post_id]
    assert "Hello from the page" in shown
    assert alice.get(f"/api/feed/posts/{post_id}").json()["author"]["username"] == "alice"


def test_the_composer_without_a_way_back_goes_to_the_new_post(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    response = submit(alice, "/feed/posts", {"text": "Where do I land?"})
    [post_id] = home_ids(alice)
    assert response.headers["location"] == f"/feed/posts/{post_id}"


def test_a_blank_post_shows_the_form_again_with_the_error(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    response = submit(alice, "/feed/posts", {"text": "   ", "next": "/feed/"})
    assert response.status_code == 422
    assert 'role="alert">text: write something</p>' in response.text
    assert textarea(response.text) == "   "
    assert home_ids(alice) == []


def test_a_long_post_by_a_free_user_shows_the_upsell_and_keeps_the_text(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    text = "A thought that runs on. " * 20  # 480 characters
    response = submit(alice, "/feed/posts", {"text": text, "next": "/feed/"})
    assert response.status_code == 402
    assert UPSELL in response.text
    assert '<a href="/premium?feature=feed.longform">' in response.text
    assert textarea(response.text) == text
    assert f"{len(text)} / 280" in response.text
    assert home_ids(alice) == []


def test_the_composer_hint_is_ready_for_free_users_and_absent_for_premium(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    free = page(alice, "/feed/")
    assert "data-longform-hint hidden" in free and UPSELL in free
    assert 'data-limit="280"' in free and "0 / 280" in free
    make_operator(app, "oscar").post("/api/admin/users/alice/grants", json={"plan": "premium"})
    premium = page(alice, "/feed/")
    assert "data-longform-hint" not in premium
    assert 'data-limit="25000"' in premium


def test_a_premium_user_may_post_long_from_the_composer(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    granted = make_operator(app, "oscar").post("/api/admin/users/alice/grants", json={"plan": "premium"})
    assert granted.status_code in (200, 201), granted.text
    text = "x" * 1000
    response = submit(alice, "/feed/posts", {"text": text, "next": "/feed/"})
    assert response.status_code == 303
    [post_id] = home_ids(alice)
    assert alice.get(f"/api/feed/posts/{post_id}").json()["text"] == text


def test_a_form_without_the_csrf_token_is_refused(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    page(alice, "/feed/")
    response = alice.post("/feed/posts", data={"text": "forged", "csrf_token": "0" * 64}, headers={**HTML, "X-CSRF-Token": ""})
    assert response.status_code == 403
    assert home_ids(alice) == []


def test_like_and_unlike_forms(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    post = write(alice, "Like me")
    response = submit(bob, f"/feed/posts/{post['id']}/like", {"next": "/feed/explore"}, on="/feed/explore")
    assert response.status_code == 303
    assert response.headers["location"] == f"/feed/explore#post-{post['id']}"
    assert bob.get(f"/api/feed/posts/{post['id']}").json()["liked_by_me"] is True
    shown = page(bob, "/feed/explore")
    assert f'action="/feed/posts/{post["id"]}/unlike"' in shown and ">Unlike</button>" in shown

    submit(bob, f"/feed/posts/{post['id']}/unlike", {"next": "/feed/explore"}, on="/feed/explore")
    after = bob.get(f"/api/feed/posts/{post['id']}").json()
    assert (after["liked_by_me"], after["likes"]) == (False, 0)


def test_a_like_posted_by_the_script_answers_the_post_s_action_bar(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    post = write(alice, "Like me in place")
    response = submit(alice, f"/feed/posts/{post['id']}/like", {"next": "/feed/", "fragment": "1"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div class="post-actions" data-post-actions>')
    assert "<html" not in response.text
    assert ">Unlike</button>" in response.text
    assert re.search(r'title="Likes">1<', response.text)
    assert 'name="next" value="/feed/"' in response.text


def test_repost_form_reposts_once_and_tells_the_author(app: Starlette) -> None:
    alice = sign_up(app, "alice", display_name="Alice")
    bob = sign_up(app, "bob_b", display_name="Bob")
    post = write(alice, "Worth sharing")
    for _ in range(2):
        response = submit(bob, f"/feed/posts/{post['id']}/repost", {"next": f"/feed/posts/{post['id']}"})
        assert response.status_code == 303
    assert alice.get(f"/api/feed/posts/{post['id']}").json()["reposts"] == 1
    shown = page(bob, "/feed/")
    assert "reposted" in shown and "Worth sharing" in shown and "Undo repost" in shown
    kinds = [item["kind"] for item in alice.get("/api/notifications").json()["results"]]
    assert kinds == ["feed.repost"]


def test_delete_form_removes_one_s_own_post_and_refuses_another_s(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    post = write(alice, "Soon gone")
    assert ">Delete</button>" not in page(bob, f"/feed/posts/{post['id']}")
    refused = submit(bob, f"/feed/posts/{post['id']}/delete", {"next": "/feed/"})
    assert refused.status_code == 403
    assert "You can only delete your own posts." in refused.text

    assert ">Delete</button>" in page(alice, f"/feed/posts/{post['id']}")
    response = submit(alice, f"/feed/posts/{post['id']}/delete", {"next": f"/feed/posts/{post['id']}"})
    assert response.status_code == 303
    assert response.headers["location"] == "/feed/"  # not the page of the post that is gone
    assert alice.get(f"/api/feed/posts/{post['id']}").status_code == 404
    assert "Soon gone" not in page(alice, "/feed/")


def test_the_post_page_shows_the_thread_and_answers_with_a_reply(app: Starlette) -> None:
    alice = sign_up(app, "alice", display_name="Alice")
    bob = sign_up(app, "bob_b", display_name="Bob")
    root = write(alice, "The first word")
    middle = write(bob, "A reply in the middle", reply_to=root["id"])
    later = write(alice, "An answer to the reply", reply_to=middle["id"])

    response = submit(bob, "/feed/posts", {"text": "Bob's reply", "reply_to": str(middle["id"]), "next": f"/feed/posts/{middle['id']}"})
    assert response.status_code == 303
    mine = bob.get(f"/api/feed/posts/{middle['id']}/thread").json()["replies"][-1]
    assert mine["text"] == "Bob's reply"
    assert response.headers["location"] == f"/feed/posts/{middle['id']}#post-{mine['id']}"

    shown = page(alice, f"/feed/posts/{middle['id']}")
    assert post_ids(shown) == [root["id"], middle["id"], later["id"], mine["id"]]  # ancestors, the post, its replies
    assert 'name="reply_to" value="%d"' % middle["id"] in shown
    assert "Post your reply" in shown


def test_a_deleted_ancestor_is_shown_as_unavailable(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    root = write(alice, "Said and regretted")
    reply = write(bob, "Still here", reply_to=root["id"])
    assert alice.delete(f"/api/feed/posts/{root['id']}").status_code == 204
    shown = page(bob, f"/feed/posts/{reply['id']}")
    assert "This post is unavailable" in shown
    assert "Said and regretted" not in shown
    assert "Still here" in shown


def test_a_refused_reply_shows_the_post_page_again_with_the_text(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    root = write(alice, "Answer me")
    response = submit(alice, "/feed/posts", {"text": "y" * 300, "reply_to": str(root["id"]), "next": f"/feed/posts/{root['id']}"})
    assert response.status_code == 402
    assert "Answer me" in response.text and UPSELL in response.text
    assert textarea(response.text) == "y" * 300


def test_signed_out_visitors_read_a_post_and_are_asked_to_log_in_to_reply(client: TestClient, app: Starlette) -> None:
    post = write(sign_up(app, "alice"), "Public words")
    shown = page(client, f"/feed/posts/{post['id']}")
    assert "Public words" in shown
    assert f'href="/login?next=/feed/posts/{post["id"]}"' in shown
    assert "<textarea" not in shown and "/like" not in shown


def test_a_missing_post_is_a_not_found_page(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    response = alice.get("/feed/posts/999999", headers=HTML)
    assert response.status_code == 404
    assert "This post doesn't exist, or was deleted." in html.unescape(response.text)


def test_the_hashtag_page_lists_its_posts_under_the_tag(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    tagged = write(alice, "Hello #Python friends")
    write(alice, "Nothing tagged here")
    shown = page(alice, "/feed/hashtags/python")
    assert "<h1>#python</h1>" in shown
    assert "<title>#python · Everything</title>" in shown
    assert post_ids(shown) == [tagged["id"]]
    assert 'href="/feed/hashtags/python" class="entity hashtag">#Python</a>' in shown


def test_explore_is_readable_signed_out(client: TestClient, app: Starlette) -> None:
    alice = sign_up(app, "alice", display_name="Alice")
    post = write(alice, "For everyone")
    write(alice, "A reply stays off explore", reply_to=post["id"])
    shown = page(client, "/feed/explore")
    assert post_ids(shown) == [post["id"]]
    assert "For everyone" in shown and "Alice" in shown and 'href="/@alice"' in shown
    assert "<textarea" not in shown and "/like" not in shown and "Delete" not in shown


def test_navigation_has_home_for_members_and_explore_for_all(client: TestClient, app: Starlette) -> None:
    alice = sign_up(app, "alice")
    assert 'href="/feed/explore"' in page(client, "/")
    assert 'href="/feed/"' not in page(client, "/")
    shown = page(alice, "/feed/")
    assert '<a href="/feed/" aria-current="page">Home</a>' in shown
    assert 'href="/feed/explore"' in shown


def test_the_profile_page_lists_the_user_s_posts(client: TestClient, app: Starlette) -> None:
    alice = sign_up(app, "alice", display_name="Alice")
    first = write(alice, "My first post")
    second = write(alice, "My second post")
    write(sign_up(app, "bob_b"), "Someone else's post")
    shown = page(client, "/@alice")
    assert '<section class="profile-section" aria-label="Posts">' in shown
    assert post_ids(shown) == [second["id"], first["id"]]
    assert "Someone else" not in shown
    assert "/static/plugins/feed/feed.css" in shown


def test_a_profile_without_posts_says_so(client: TestClient, app: Starlette) -> None:
    sign_up(app, "quiet")
    assert "@quiet hasn't posted yet." in html.unescape(page(client, "/@quiet"))


def test_what_people_write_is_escaped(client: TestClient, app: Starlette) -> None:
    alice = sign_up(app, "alice", display_name="<b>Alice</b>")
    write(alice, '<script>alert("owned")</script> & <img src=x onerror=alert(1)>')
    for path in ("/feed/explore", "/@alice"):
        shown = page(client, path)
        assert "<script>alert" not in shown and "<img src=x" not in shown and "<b>Alice</b>" not in shown
        assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in shown
        assert "&lt;b&gt;Alice&lt;/b&gt;" in shown


def test_a_mention_is_a_link_and_notifies_when_posted_from_the_page(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    submit(alice, "/feed/posts", {"text": "Hi @bob_b", "next": "/feed/"})
    assert '<a href="/@bob_b" class="entity mention">@bob_b</a>' in page(alice, "/feed/")
    assert [item["kind"] for item in bob.get("/api/notifications").json()["results"]] == ["feed.mention"]


def test_a_quote_from_the_page(app: Starlette) -> None:
    alice = sign_up(app, "alice", display_name="Alice")
    bob = sign_up(app, "bob_b")
    original = write(alice, "Quote me on this")
    composer = page(bob, f"/feed/?quote_of={original['id']}")
    assert f'name="quote_of" value="{original["id"]}"' in composer
    assert "Quote me on this" in composer
    submit(bob, "/feed/posts", {"text": "So true", "quote_of": str(original["id"]), "next": "/feed/"})
    shown = page(bob, "/feed/")
    assert 'class="quote-card"' in shown and "Quote me on this" in shown and "So true" in shown


def test_timelines_page_with_a_load_more_link_and_fragments(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    made = [write(alice, f"Post number {number}")["id"] for number in range(23)]
    first = page(alice, "/feed/")
    assert post_ids(first) == made[::-1][:20]
    more = re.search(r'<li class="load-more" data-load-more><a class="button" href="(/feed/\?cursor=[^"]+)">Load more</a></li>', first)
    assert more, "the first page ends with a Load more link"
    next_url = html.unescape(more.group(1))

    # Without scripts the link is the next page; the script asks for its list items alone.
    assert post_ids(page(alice, next_url)) == made[::-1][20:]
    fragment = alice.get(next_url + "&fragment=1", headers=HTML)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "<textarea" not in fragment.text
    assert fragment.text.lstrip().startswith('<li class="post-item"')
    assert post_ids(fragment.text) == made[::-1][20:]
    assert "data-load-more" not in fragment.text  # the last page


def test_explore_fragments_page_on_for_signed_out_readers(client: TestClient, app: Starlette) -> None:
    alice = sign_up(app, "alice")
    made = [write(alice, f"Post number {number}")["id"] for number in range(41)]
    first = client.get("/feed/explore?fragment=1", headers=HTML).text
    assert post_ids(first) == made[::-1][:20]
    cursor = html.unescape(re.search(r'href="/feed/explore\?cursor=([^"]+)"', first).group(1))
    second = client.get("/feed/explore", params={"cursor": cursor, "fragment": "1"}, headers=HTML).text
    assert post_ids(second) == made[::-1][20:40]
    assert "data-load-more" in second


def test_a_bad_cursor_is_a_readable_error(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    response = alice.get("/feed/?cursor=nonsense", headers=HTML)
    assert response.status_code == 422
    assert "<html" in response.text


def test_a_blocked_profile_shows_no_posts_section(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    bob = sign_up(app, "bob_b")
    write(alice, "Not for Bob")
    assert alice.put("/api/blocks/bob_b").status_code in (200, 204)
    shown = page(bob, "/@alice")
    assert 'aria-label="Posts"' not in shown and "Not for Bob" not in shown


def test_forms_never_send_anyone_off_site(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    post = write(alice, "Stay here")
    for target in ("//evil.example", "https://evil.example", "/\t/evil.example"):
        response = submit(alice, f"/feed/posts/{post['id']}/like", {"next": target})
        assert response.headers["location"] == f"/feed/posts/{post['id']}#post-{post['id']}"
