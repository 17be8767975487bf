"""In real Chromium: sign up, search the directory as you type, open a profile and follow, on a phone and a desktop."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import httpx
import pytest

from tests.browser_kit import BROWSER_MARKS, VIEWPORTS, assert_no_horizontal_scroll, signed_up
from tests.conftest import PASSWORD, LiveServer

pytestmark = BROWSER_MARKS


def counts_text(page: Any) -> str:
    """The profile's Following/Followers line with its whitespace collapsed: '0 Following 1 Followers'."""
    return " ".join(page.locator(".counts").inner_text().split())


@pytest.mark.parametrize("device", VIEWPORTS)
def test_sign_up_find_someone_as_you_type_and_follow_them(browser: Any, live_server: LiveServer, device: str) -> None:
    suffix = secrets.token_hex(3)
    me, target = f"ada_{suffix}", f"grace_{suffix}"
    seeded = httpx.post(
        f"{live_server.url}/api/auth/signup",
        json={"username": target, "password": PASSWORD, "display_name": "Grace Hopper"},
        timeout=30,
    )
    assert seeded.status_code == 201, seeded.text

    context = browser.new_context(base_url=live_server.url, **VIEWPORTS[device])
    context.set_default_timeout(10_000)
    page = context.new_page()
    phone = device == "phone"
    try:
        # Sign up through the page and land on one's own profile, signed in.
        page.goto("/signup")
        if phone:
            assert_no_horizontal_scroll(page)
        page.fill("input[name=username]", me)
        page.fill("input[name=display_name]", "Ada Lovelace")
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Sign up", exact=True).click()
        page.wait_for_url(f"**/@{me}")
        assert page.locator("h1").inner_text().startswith("Ada Lovelace")
        assert page.get_by_role("button", name="Log out").is_visible()
        assert page.get_by_role("link", name="Edit profile").is_visible()

        # The directory starts empty; typing a prefix of the name asks /api/directory and draws the match.
        page.goto("/directory")
        results = page.locator("#directory-results")
        assert results.locator("a").count() == 0
        with page.expect_response(lambda response: "/api/directory" in response.url) as searched:
            page.locator("#directory-q").press_sequentially("Grace H", delay=40)
        assert searched.value.ok
        result = results.locator(f"a[href='/@{target}']")
        result.wait_for()
        assert "Grace Hopper" in result.inner_text()
        assert f"@{target}" in result.inner_text()
        # The script keeps the address shareable; it follows the last answer drawn, which may lag the typing.
        page.wait_for_url(re.compile(r"/directory\?q=Grace(\+|%20)H"))
        if phone:
            assert_no_horizontal_scroll(page)

        # The profile shows who they are, their counts and a Follow button.
        result.click()
        page.wait_for_url(f"**/@{target}")
        assert page.locator("h1").inner_text().startswith("Grace Hopper")
        assert page.locator(".profile .handle").inner_text().startswith(f"@{target}")
        assert counts_text(page) == "0 Following 0 Followers"
        follow = page.get_by_role("button", name="Follow", exact=True)
        assert follow.is_visible()
        if phone:
            assert_no_horizontal_scroll(page)

        # Following them counts at once and turns the button into Unfollow.
        follow.click()
        page.get_by_role("button", name="Unfollow", exact=True).wait_for()
        assert re.search(r"\b1 Followers\b", counts_text(page))
        assert page.get_by_role("button", name="Follow", exact=True).count() == 0
        if phone:
            assert_no_horizontal_scroll(page)
    finally:
        context.close()


@pytest.mark.parametrize("device", VIEWPORTS)
def test_a_new_follower_lights_the_bell_live_and_locked_things_say_why(browser: Any, live_server: LiveServer, device: str) -> None:
    suffix = secrets.token_hex(3)
    me = signed_up(live_server.url, f"bell_{suffix}", "Bell Owner")
    fan = signed_up(live_server.url, f"fan_{suffix}", "Fan Person")
    context = browser.new_context(base_url=live_server.url, **VIEWPORTS[device])
    context.set_default_timeout(10_000)
    context.add_cookies([{"name": "everything_session", "value": me.cookies["everything_session"], "url": live_server.url}])
    page = context.new_page()
    try:
        # The greeting says the page is listening. The frame listener is on before the page loads: a greeting
        # that came before a listener attached afterwards would never be seen.
        greetings: list[object] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: greetings.append(frame)) if ws.url.endswith("/ws") else None)
        page.goto("/")
        deadline = time.monotonic() + 10
        while not greetings:
            assert time.monotonic() < deadline, "the page's socket was never greeted"
            page.wait_for_timeout(50)  # lets Playwright deliver its events
        badge = page.locator("[data-unread-count]")
        assert badge.is_hidden()

        # Someone follows; the page learns of it over the websocket, without a reload.
        assert fan.put(f"/api/users/bell_{suffix}/follow").status_code == 200
        badge.wait_for(state="visible")
        assert badge.inner_text() == "1"
        page.get_by_role("link", name=re.compile("^Notifications")).click()
        page.wait_for_url("**/notifications")
        assert f"Fan Person (@fan_{suffix}) followed you" in page.locator(".notifications").inner_text()

        # A locked feature explains itself in plain words, on any screen.
        page.goto("/premium?feature=kernel.verified")
        assert page.locator("h1").inner_text() == "The verified badge is a premium feature. Subscribe to gain access."
        if device == "phone":
            assert_no_horizontal_scroll(page)
    finally:
        context.close()
