"""In real Chromium, on a phone and a desktop: post with a mention, open the post, reply, like; timelines scroll on."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest

from tests.browser_kit import BROWSER_MARKS, VIEWPORTS, assert_no_horizontal_scroll, signed_up
from tests.conftest import PASSWORD, LiveServer

pytestmark = BROWSER_MARKS


@pytest.mark.parametrize("device", VIEWPORTS)
def test_post_a_mention_open_it_reply_and_like(browser: Any, live_server: LiveServer, device: str) -> None:
    suffix = secrets.token_hex(3)
    me, friend = f"ada_{suffix}", f"grace_{suffix}"
    signed_up(live_server.url, friend, "Grace Hopper").close()
    phone = device == "phone"

    def fits() -> None:
        if phone:
            assert_no_horizontal_scroll(page)

    context = browser.new_context(base_url=live_server.url, **VIEWPORTS[device])
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        # Sign up through the page, then go Home from the navigation.
        page.goto("/signup")
        page.fill("input[name=username]", me)
        page.fill("input[name=display_name]", "Ada Lovelace")
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Sign up", exact=True).click()
        page.wait_for_url(f"**/@{me}")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Home", exact=True).click()
        page.wait_for_url("**/feed/")
        fits()

        # The counter counts characters as people see them, and over 280 the premium hint shows.
        composer = page.get_by_label("What's happening?")
        counter = page.locator("#compose [data-counter]")
        hint = page.locator("#compose [data-longform-hint]")
        composer.fill("👨‍👩‍👧‍👦é")
        assert counter.inner_text() == "2 / 280"
        assert hint.is_hidden()
        composer.fill("x" * 281)
        assert counter.inner_text() == "281 / 280"
        hint.wait_for(state="visible")
        assert "premium feature" in hint.inner_text()
        assert hint.get_by_role("link").get_attribute("href") == "/premium?feature=feed.longform"
        fits()

        # Post a message that mentions a friend: back on the timeline, the mention is a link to them.
        composer.fill(f"Hello @{friend}, the engine is ready!")
        assert hint.is_hidden()
        page.get_by_role("button", name="Post", exact=True).click()
        page.wait_for_url("**/feed/")
        item = page.locator(".post-item").first
        mention = item.locator(f"a.entity.mention[href='/@{friend}']")
        assert mention.inner_text() == f"@{friend}"
        assert "the engine is ready!" in item.locator(".post-text").inner_text()
        fits()

        # Open the post from its time, and reply to it.
        item.locator("a.time").click()
        page.wait_for_url(re.compile(r".*/feed/posts/\d+$"))
        post_url = page.url
        focused = page.locator(".post-item.focus")
        assert focused.locator(f"a.entity.mention[href='/@{friend}']").is_visible()
        fits()
        page.get_by_label("Post your reply").fill(f"And @{friend} wrote the compiler.")
        page.get_by_role("button", name="Reply", exact=True).click()
        page.wait_for_url(re.compile(re.escape(post_url) + r"#post-\d+$"))
        reply = page.locator(".replies .post-item")
        assert reply.count() == 1
        assert "wrote the compiler" in reply.inner_text()
        assert focused.locator(".count[title=Replies]").inner_text() == "1"
        fits()

        # Like the post, in place: the button turns into Unlike and the count goes up, and it stays so.
        with page.expect_response(lambda response: response.url.endswith("/like")) as liked:
            focused.get_by_role("button", name="Like", exact=True).click()
        assert liked.value.status == 200  # the action bar came back, not a redirect to a new page
        focused.get_by_role("button", name="Unlike", exact=True).wait_for()
        assert focused.locator(".count[title=Likes]").inner_text() == "1"
        fits()
        page.reload()
        assert page.locator(".post-item.focus").get_by_role("button", name="Unlike", exact=True).is_visible()
        assert page.locator(".post-item.focus .count[title=Likes]").inner_text() == "1"
        fits()
    finally:
        context.close()


@pytest.mark.parametrize("device", VIEWPORTS)
def test_explore_loads_older_posts_as_you_scroll(browser: Any, live_server: LiveServer, device: str) -> None:
    author = signed_up(live_server.url, f"prolific_{secrets.token_hex(3)}", "Prolific Writer")
    for number in range(45):
        assert author.post("/api/feed/posts", json={"text": f"Thought number {number}"}).status_code == 201
    author.close()

    context = browser.new_context(base_url=live_server.url, **VIEWPORTS[device])
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto("/feed/explore")
        posts = page.locator(".post-item")
        assert posts.count() == 20
        for shown in (40, 45):
            page.locator("[data-load-more]").scroll_into_view_if_needed()
            page.wait_for_function(f"document.querySelectorAll('.post-item').length === {shown}")
        assert page.locator("[data-load-more]").count() == 0
        assert posts.last.locator(".post-text").inner_text() == "Thought number 0"
        assert page.url.endswith("/feed/explore")  # one page, scrolled on
        if device == "phone":
            assert_no_horizontal_scroll(page)
    finally:
        context.close()
