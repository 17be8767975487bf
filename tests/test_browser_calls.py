"""In real Chromium with a fake camera and microphone: a video call between two people, the echo test, a refusal.

Media stays on loopback: Chromium is allowed loopback candidates, and the
server's echo peer offers 127.0.0.1 only (``[plugins.calls] host_addresses``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel import create_app
from tests.browser_kit import (
    BROWSER_MARKS,
    CALL_ARGS,
    CALL_INBOUND,
    VIEWPORTS,
    assert_no_horizontal_scroll,
    launched_chromium,
    received_media,
)
from tests.conftest import PASSWORD, LiveServer, make_settings

pytestmark = BROWSER_MARKS

@pytest.fixture(scope="module")
def call_browser() -> Iterator[Any]:
    yield from launched_chromium(CALL_ARGS)


@pytest.fixture
def calls_server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path / "data", plugins={"calls": {"host_addresses": ["127.0.0.1"]}})
    with LiveServer(create_app(settings)) as server:
        yield server


def lets_everyone_call(context: Any) -> Any:
    """In the callee's settings page, let everyone call; returns that page, left open to ring."""
    page = context.new_page()
    page.goto("/calls/settings")
    page.get_by_label("Everyone").check()
    page.get_by_role("button", name="Save call settings").click()
    page.wait_for_url(re.compile(r".*saved=calls"))
    return page


def person(browser: Any, server: LiveServer, username: str, display_name: str, device: str = "desktop") -> Any:
    """A browser context signed up as a new user (the API shares the context's cookies), on a page of the site."""
    context = browser.new_context(base_url=server.url, **VIEWPORTS[device])
    context.set_default_timeout(15_000)
    response = context.request.post("/api/auth/signup", data={"username": username, "password": PASSWORD, "display_name": display_name})
    assert response.status == 201, response.text()
    return context


def make_premium(server: LiveServer, username: str) -> None:
    kernel = server.server.config.app.state.kernel
    kernel.entitlements.grant(kernel.user(username), "premium")


def fits(page: Any, device: str) -> None:
    if device == "phone":
        assert_no_horizontal_scroll(page)


def buttons_are_large(page: Any, scope: str) -> None:
    """Every button of the overlay is at least 44 px tall, as a finger needs."""
    heights = page.eval_on_selector_all(f"{scope} button, {scope} a.button", "nodes => nodes.filter(n => n.offsetParent).map(n => n.getBoundingClientRect().height)")
    assert heights and min(heights) >= 44, heights


@pytest.mark.parametrize("device", VIEWPORTS)
def test_a_video_call_from_a_profile_connects_both_ways(call_browser: Any, calls_server: LiveServer, device: str) -> None:
    suffix = secrets.token_hex(3)
    caller_name, callee_name = f"ada_{suffix}", f"bob_{suffix}"
    callee_context = person(call_browser, calls_server, callee_name, "Bob Builder", device)
    caller_context = person(call_browser, calls_server, caller_name, "Ada Lovelace", device)
    make_premium(calls_server, caller_name)
    try:
        # Bob lets everyone call him, in his settings' Calls section.
        bob = callee_context.new_page()
        bob.goto("/settings")
        section = bob.get_by_role("region", name="Calls")
        section.get_by_label("Everyone").check()
        section.get_by_role("button", name="Save call settings").click()
        bob.wait_for_url(re.compile(r".*/settings\?saved=calls"))
        bob.goto("/calls/")

        # Ada calls him from his profile, without leaving it.
        ada = caller_context.new_page()
        ada.goto(f"/@{callee_name}")
        ada.get_by_role("link", name="Video call", exact=True).click()
        view = ada.locator("[data-calls-view]")
        view.wait_for()
        assert ada.url.endswith(f"/@{callee_name}")
        ada.wait_for_selector("[data-calls-view][data-call-state=ringing]")
        assert view.locator("[data-calls-state]").inner_text() == "Ringing…"

        # Bob's page rings, whatever page he is on; he accepts with video.
        ringing = bob.get_by_role("alertdialog")
        ringing.wait_for()
        assert "Ada Lovelace" in ringing.inner_text()
        assert "Incoming video call" in ringing.inner_text()
        fits(bob, device)
        buttons_are_large(bob, "[data-calls-incoming]")
        ringing.get_by_role("button", name="Accept with video").click()

        # Both are connected, hear and see each other, and the clock runs.
        for page in (ada, bob):
            page.wait_for_selector("[data-calls-view][data-call-state=connected]")
            received = received_media(page)
            assert received["audio"] > 0 and received["video"] > 0
            page.wait_for_function("document.querySelector('[data-calls-duration]').textContent.startsWith('0:0')")
            page.wait_for_function("document.querySelector('[data-calls-remote]').videoWidth > 0")
            assert page.locator("[data-calls-local]").is_visible()
            fits(page, device)
            buttons_are_large(page, "[data-calls-view]")

        # Mute is a toggle the other side cannot hear.
        bob.get_by_role("button", name="Mute").click()
        bob.get_by_role("button", name="Unmute").wait_for()
        assert bob.evaluate("window.everythingCalls.peer.getSenders().find(s => s.track && s.track.kind === 'audio').track.enabled") is False

        # Ada hangs up: both see why the call ended.
        ada.get_by_role("button", name="Hang up").click()
        assert ada.locator("[data-calls-ended]").inner_text() == "You hung up."
        bob.wait_for_selector("[data-calls-ended=hangup]")
        assert bob.locator("[data-calls-ended]").inner_text() == "The call ended."
        bob.get_by_role("button", name="Close").click()

        # The call is in Bob's history, answered: not a missed call.
        bob.reload()
        item = bob.locator(".call-item").first
        assert "Ada Lovelace" in item.inner_text()
        assert "Missed" not in item.inner_text()
        fits(bob, device)
    finally:
        caller_context.close()
        callee_context.close()


@pytest.mark.parametrize("device", VIEWPORTS)
def test_the_echo_test_sends_back_sound_and_picture(call_browser: Any, calls_server: LiveServer, device: str) -> None:
    # Free for everyone: no plan needed.
    context = person(call_browser, calls_server, f"eve_{secrets.token_hex(3)}", "Eve Tester", device)
    try:
        page = context.new_page()
        page.goto("/calls/")
        page.get_by_role("link", name="call the echo test").click()
        page.wait_for_selector("[data-calls-view][data-call-state=connected]")
        received = received_media(page)
        assert received["audio"] > 0 and received["video"] > 0
        fits(page, device)
        buttons_are_large(page, "[data-calls-view]")

        # Leaving the page mid-call asks first; staying keeps the call.
        with page.expect_event("dialog") as leaving:
            page.close(run_before_unload=True)
        assert leaving.value.type == "beforeunload"
        leaving.value.dismiss()
        assert page.locator("[data-calls-view]").get_attribute("data-call-state") == "connected"

        page.get_by_role("button", name="Hang up").click()
        assert page.locator("[data-calls-ended]").inner_text() == "You hung up."
    finally:
        context.close()


def test_a_refused_call_says_why(call_browser: Any, calls_server: LiveServer) -> None:
    suffix = secrets.token_hex(3)
    callee = f"cal_{suffix}"
    callee_context = person(call_browser, calls_server, callee, "Cal Choosy")  # takes calls from people he follows only
    caller_context = person(call_browser, calls_server, f"ada_{suffix}", "Ada Lovelace", "phone")
    make_premium(calls_server, f"ada_{suffix}")
    try:
        ada = caller_context.new_page()
        ada.goto(f"/@{callee}")
        ada.get_by_role("link", name="Audio call", exact=True).click()
        ada.wait_for_selector("[data-calls-ended=not_allowed]")
        assert ada.locator("[data-calls-ended]").inner_text() == f"@{callee} only takes calls from certain people."
        assert_no_horizontal_scroll(ada)
        ada.get_by_role("button", name="Close").click()
        assert ada.locator("[data-calls-view]").count() == 0
    finally:
        caller_context.close()
        callee_context.close()


def test_turning_the_camera_on_in_an_audio_call_sends_video(call_browser: Any, calls_server: LiveServer) -> None:
    suffix = secrets.token_hex(3)
    caller_name, callee_name = f"ada_{suffix}", f"bob_{suffix}"
    callee_context = person(call_browser, calls_server, callee_name, "Bob Builder")
    caller_context = person(call_browser, calls_server, caller_name, "Ada Lovelace")
    make_premium(calls_server, caller_name)
    try:
        bob = lets_everyone_call(callee_context)

        ada = caller_context.new_page()
        ada.goto(f"/calls/call?to={callee_name}&media=audio")  # typed in: the page places the call by itself
        bob.get_by_role("alertdialog").get_by_role("button", name="Accept with audio").click()
        for page in (ada, bob):
            page.wait_for_selector("[data-calls-view][data-call-state=connected]")
            page.wait_for_function(f"({CALL_INBOUND}).call().then(r => r.audio > 0)")
        assert bob.evaluate(CALL_INBOUND).get("video", 0) == 0
        assert not bob.locator("[data-calls-view]").evaluate("view => view.classList.contains('has-video')")

        # Ada turns her camera on: the call is renegotiated and Bob sees her.
        ada.get_by_role("button", name="Camera on").click()
        ada.locator("[data-calls-local]").wait_for(state="visible")
        bob.wait_for_function("document.querySelector('[data-calls-view]').classList.contains('has-video')")
        bob.wait_for_function("document.querySelector('[data-calls-remote]').videoWidth > 0")
        assert received_media(bob)["video"] > 0

        # And off again: her camera stops and Bob is back to her initial.
        ada.get_by_role("button", name="Camera off").click()
        ada.locator("[data-calls-local]").wait_for(state="hidden")
        assert ada.evaluate("window.everythingCalls.peer.getSenders().every(s => !s.track || s.track.kind !== 'video')")
        bob.wait_for_function("!document.querySelector('[data-calls-view]').classList.contains('has-video')")

        # Bob switches microphones (Chromium's fake devices are three) without renegotiating.
        bob.get_by_role("button", name="Devices").click()
        microphones = bob.get_by_label("Microphone")
        microphones.locator("option").nth(2).wait_for(state="attached")  # the list fills in once the browser has listed them
        options = microphones.locator("option").evaluate_all("nodes => nodes.map(n => n.value)")
        assert len(options) == 3
        before = bob.evaluate("window.everythingCalls.peer.getSenders().find(s => s.track && s.track.kind === 'audio').track.id")
        microphones.select_option(options[-1])
        bob.wait_for_function(
            f"window.everythingCalls.peer.getSenders().find(s => s.track && s.track.kind === 'audio').track.id !== {before!r}"
        )
        assert bob.evaluate("window.everythingCalls.peer.signalingState") == "stable"
        # Ada still hears him, from the new microphone.
        heard = ada.evaluate(CALL_INBOUND)["audio"]
        ada.wait_for_function(f"({CALL_INBOUND}).call().then(r => r.audio > {heard})")
    finally:
        caller_context.close()
        callee_context.close()


# Keeps every WebSocket the page opens, so that a test can drop the page's realtime connection.
TRACK_SOCKETS = """
window.testSockets = [];
window.WebSocket = class extends window.WebSocket {
  constructor(...args) { super(...args); window.testSockets.push(this); }
};
"""


@pytest.fixture
def short_grace_server(tmp_path: Path) -> Iterator[LiveServer]:
    """Calls outlive a dropped socket by 3 s only."""
    calls = {"host_addresses": ["127.0.0.1"], "reconnect_grace_seconds": 3}
    with LiveServer(create_app(make_settings(tmp_path / "data", plugins={"calls": calls}))) as server:
        yield server


def test_a_call_survives_its_socket_dropping_and_coming_back(call_browser: Any, short_grace_server: LiveServer) -> None:
    suffix = secrets.token_hex(3)
    caller_name, callee_name = f"ada_{suffix}", f"bob_{suffix}"
    callee_context = person(call_browser, short_grace_server, callee_name, "Bob Builder")
    caller_context = person(call_browser, short_grace_server, caller_name, "Ada Lovelace")
    caller_context.add_init_script(TRACK_SOCKETS)
    make_premium(short_grace_server, caller_name)
    try:
        bob = lets_everyone_call(callee_context)

        ada = caller_context.new_page()
        ada.goto(f"/calls/call?to={callee_name}&media=video")
        bob.get_by_role("alertdialog").get_by_role("button", name="Accept with video").click()
        for page in (ada, bob):
            page.wait_for_selector("[data-calls-view][data-call-state=connected]")

        # Ada's socket drops; the page reconnects by itself and resumes the call on the new one.
        with ada.expect_websocket() as reconnected:
            ada.evaluate("window.testSockets[window.testSockets.length - 1].close()")
        sent: list[str] = []
        reconnected.value.on("framesent", lambda payload: sent.append(str(payload)))
        ada.wait_for_timeout(4000)  # longer than the grace: an unresumed call would have ended
        assert any('"type":"calls.resume"' in frame.replace(" ", "") for frame in sent), sent
        for page in (ada, bob):
            assert page.locator("[data-calls-view]").get_attribute("data-call-state") == "connected"

        # The new connection carries the call: Ada's hang-up reaches Bob.
        ada.get_by_role("button", name="Hang up").click()
        bob.wait_for_selector("[data-calls-ended=hangup]")
    finally:
        caller_context.close()
        callee_context.close()


def test_two_people_calling_each_other_at_once_end_up_in_one_call(call_browser: Any, calls_server: LiveServer) -> None:
    suffix = secrets.token_hex(3)
    names = f"ada_{suffix}", f"bob_{suffix}"
    contexts = [person(call_browser, calls_server, name, name.title()) for name in names]
    try:
        pages = []
        for name, context in zip(names, contexts, strict=True):
            make_premium(calls_server, name)
            page = context.new_page()
            page.goto("/calls/settings")
            page.get_by_label("Everyone").check()
            page.get_by_role("button", name="Save call settings").click()
            page.wait_for_url(re.compile(r".*saved=calls"))
            pages.append(page)

        # Both press Call in the same moment: one call loses the glare, and its caller answers the other.
        for page, other in zip(pages, reversed(names), strict=True):
            page.evaluate(f"() => {{ window.everythingCalls.place({other!r}, 'video'); }}")
        for page in pages:
            page.wait_for_selector("[data-calls-view][data-call-state=connected]")
            received = received_media(page)
            assert received["audio"] > 0 and received["video"] > 0
        ids = [page.evaluate("window.everythingCalls.call.id") for page in pages]
        assert ids[0] == ids[1]
        assert sorted(page.evaluate("window.everythingCalls.call.role") for page in pages) == ["callee", "caller"]
    finally:
        for context in contexts:
            context.close()


def test_accepting_an_audio_call_with_video_sends_the_picture_too(call_browser: Any, calls_server: LiveServer) -> None:
    suffix = secrets.token_hex(3)
    caller_name, callee_name = f"ada_{suffix}", f"bob_{suffix}"
    callee_context = person(call_browser, calls_server, callee_name, "Bob Builder")
    caller_context = person(call_browser, calls_server, caller_name, "Ada Lovelace")
    make_premium(calls_server, caller_name)
    try:
        bob = lets_everyone_call(callee_context)

        ada = caller_context.new_page()
        ada.goto(f"/calls/call?to={callee_name}&media=audio")
        ringing = bob.get_by_role("alertdialog")
        assert "Incoming audio call" in ringing.inner_text()
        ringing.get_by_role("button", name="Accept with video").click()

        # The offer had no video: Bob's answer brings his camera in by renegotiating.
        ada.wait_for_selector("[data-calls-view][data-call-state=connected]")
        assert received_media(ada)["video"] > 0
        ada.wait_for_function("document.querySelector('[data-calls-view]').classList.contains('has-video')")
        assert bob.locator("[data-calls-local]").is_visible()
    finally:
        caller_context.close()
        callee_context.close()


def test_a_call_link_from_another_site_waits_for_a_click(call_browser: Any, calls_server: LiveServer) -> None:
    context = person(call_browser, calls_server, f"eve_{secrets.token_hex(3)}", "Eve Tester", "phone")
    try:
        # "localhost" is another site than "127.0.0.1": a page there links to the echo test here.
        page = context.new_page()
        page.goto(calls_server.url.replace("127.0.0.1", "localhost") + "/directory")
        target = calls_server.url + "/calls/call?to=echo&media=video"
        page.evaluate(f"() => {{ const a = document.createElement('a'); a.href = {target!r}; a.textContent = 'Test'; a.id = 'lure'; document.body.prepend(a); }}")
        page.click("#lure")
        page.wait_for_url(target)
        page.wait_for_timeout(500)
        assert page.locator("[data-calls-view]").count() == 0  # nothing rang, no camera came on
        assert page.locator("[data-call-page-status]").inner_text() == "Ready when you are."
        assert_no_horizontal_scroll(page)

        page.get_by_role("button", name="Start video call").click()
        page.wait_for_selector("[data-calls-view][data-call-state=connected]")
        assert received_media(page)["video"] > 0
        page.get_by_role("button", name="Hang up").click()
        page.get_by_role("button", name="Close").click()
        assert page.locator("[data-call-page-status]").inner_text() == "You hung up."
        assert page.get_by_role("button", name="Call again").is_visible()
    finally:
        context.close()
