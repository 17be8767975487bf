"""In real Chromium with a fake microphone: a host speaks in a Space and a listener hears it; the stage on a phone.

Media stays on loopback: Chromium is allowed loopback candidates, and the
server's media peers offer 127.0.0.1 only (``[plugins.spaces] host_addresses``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel import create_app
from tests.browser_kit import BROWSER_MARKS, VIEWPORTS, assert_no_horizontal_scroll, launched_chromium
from tests.conftest import PASSWORD, LiveServer, make_settings

pytestmark = BROWSER_MARKS

MEDIA_ARGS = [
    "--use-fake-ui-for-media-stream",  # grant the microphone without asking
    "--use-fake-device-for-media-stream",  # a beeping fake microphone
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]

# What the page's Space peer has received so far: audio packets, and the energy of the sound in them.
INBOUND = """async () => {
  const pc = window.spacesPeer;
  const received = {packets: 0, energy: 0};
  if (!pc) return received;
  (await pc.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "audio") {
      received.packets += report.packetsReceived || 0;
      received.energy += report.totalAudioEnergy || 0;
    }
  });
  return received;
}"""


@pytest.fixture(scope="module")
def media_browser() -> Iterator[Any]:
    yield from launched_chromium(MEDIA_ARGS)


@pytest.fixture
def spaces_server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path / "data", plugins={"spaces": {"host_addresses": ["127.0.0.1"]}})
    with LiveServer(create_app(settings)) as server:
        yield server


def person(browser: Any, server: LiveServer, username: str, display_name: str, device: str = "desktop") -> Any:
    """A browser context signed up as a new user (the API shares the context's cookies)."""
    context = browser.new_context(base_url=server.url, **VIEWPORTS[device])
    context.set_default_timeout(15_000)
    response = context.request.post("/api/auth/signup", data={"username": username, "password": PASSWORD, "display_name": display_name})
    assert response.status == 201, response.text()
    return context


def hosts_a_space(context: Any, title: str) -> Any:
    """Start a Space from the list page's form and join it with the microphone on; returns the host's page."""
    page = context.new_page()
    page.goto("/spaces")
    assert_no_horizontal_scroll(page)
    page.get_by_label("What do you want to talk about?").fill(title)
    page.get_by_role("button", name="Start your Space").click()
    page.wait_for_url(re.compile(r".*/spaces/\d+$"))
    page.get_by_role("button", name="Join this Space").click()
    page.get_by_role("button", name="Leave").wait_for()
    page.get_by_role("button", name="Unmute your microphone", exact=True).click()
    page.get_by_role("button", name="Mute your microphone", exact=True).wait_for()
    return page


def joins(context: Any, url: str) -> Any:
    """Open the Space at ``url`` and join it as a listener; returns the page."""
    page = context.new_page()
    page.goto(url)
    page.get_by_role("button", name="Join this Space").click()
    page.get_by_role("button", name="Leave").wait_for()
    return page


def hears(page: Any, packets: int = 50, timeout: float = 20) -> dict[str, float]:
    """Wait until the page's peer has received more than ``packets`` audio packets carrying sound."""
    deadline = time.monotonic() + timeout
    while True:
        received = page.evaluate(INBOUND)
        if received["packets"] > packets and received["energy"] > 0:
            return received
        assert time.monotonic() < deadline, f"{page.url}: not enough audio within {timeout} s: {received}"
        page.wait_for_timeout(250)


def test_a_listener_hears_the_host_and_is_invited_to_speak(media_browser: Any, spaces_server: LiveServer) -> None:
    suffix = secrets.token_hex(3)
    host_context = person(media_browser, spaces_server, f"ada_{suffix}", "Ada Lovelace")
    listener_context = person(media_browser, spaces_server, f"bob_{suffix}", "Bob Builder")
    try:
        ada = hosts_a_space(host_context, "Morning chat")
        assert ada.evaluate("window.spacesPeer.getTransceivers()[0].currentDirection") == "sendrecv"

        # Bob joins as a listener: his peer only receives, and the host's sound arrives.
        bob = joins(listener_context, ada.url)
        assert bob.evaluate("window.spacesPeer.getTransceivers().map(t => t.currentDirection)") == ["recvonly"]
        hears(bob)
        stage = bob.locator("[data-spaces-stage]")
        assert "Ada Lovelace" in stage.inner_text() and "Host" in stage.inner_text()
        ada.locator("[data-spaces-listeners]").get_by_text("Bob Builder").wait_for()

        # Bob raises his hand; Ada sees it and invites him to speak.
        bob.get_by_role("button", name="Raise hand").click()
        bob.get_by_role("button", name="Lower hand").wait_for()
        hands = ada.locator("[data-spaces-hands]")
        hands.get_by_text("Bob Builder").wait_for()
        hands.get_by_role("button", name="Invite to speak: Bob Builder").click()

        # Bob's page brings his microphone in with a new peer, muted until he unmutes.
        bob.wait_for_function("window.spacesPeer && window.spacesPeer.getSenders().some(s => s.track && s.track.readyState === 'live')")
        bob.locator("[data-spaces-stage] [data-user^=bob_][data-role=speaker]").wait_for()
        bob.get_by_role("button", name="Unmute your microphone", exact=True).click()
        bob.get_by_role("button", name="Mute your microphone", exact=True).wait_for()
        assert bob.evaluate("window.spacesPeer.getSenders().find(s => s.track).track.enabled") is True
        hears(bob)  # the new peer carries the Space too
        ada.locator("[data-spaces-stage] [data-user^=bob_][data-role=speaker]").wait_for()
    finally:
        listener_context.close()
        host_context.close()


def test_the_stage_fits_a_phone_and_shows_reactions_and_the_end(media_browser: Any, spaces_server: LiveServer) -> None:
    suffix = secrets.token_hex(3)
    host_context = person(media_browser, spaces_server, f"ada_{suffix}", "Ada Lovelace", "phone")
    listener_context = person(media_browser, spaces_server, f"bob_{suffix}", "Bob Builder With A Rather Long Name", "phone")
    try:
        ada = hosts_a_space(host_context, "A Space with a title long enough to wrap on a small phone screen")
        bob = joins(listener_context, ada.url)
        ada.locator("[data-spaces-listeners]").get_by_text("Bob Builder").wait_for()
        for page in (ada, bob):
            assert_no_horizontal_scroll(page)

        # The host manages a listener from the listener list.
        ada.get_by_label("Manage Bob Builder With A Rather Long Name").click()
        assert ada.get_by_role("button", name="Remove from the Space: Bob Builder With A Rather Long Name").is_visible()
        assert_no_horizontal_scroll(ada)

        # A reaction floats on everyone's page, with who sent it.
        bob.get_by_role("button", name="React with 👏").click()
        ada.locator("[data-spaces-float] [data-reaction='👏']").wait_for()
        assert f"@bob_{suffix}" in ada.locator("[data-spaces-float]").inner_text()

        # Recording needs premium: the host is told so, with the way to it.
        ada.get_by_role("button", name="Record").click()
        line = ada.locator("[data-spaces-line]")
        line.get_by_role("link", name="See plans").wait_for()
        assert "premium" in line.inner_text().lower()
        assert ada.locator("[data-spaces-rec]").is_hidden()

        # The host ends the Space; the listener's page says so.
        ada.get_by_role("button", name="End Space").click()
        ada.get_by_role("heading", name="This Space has ended").wait_for()
        bob.get_by_role("heading", name="This Space has ended").wait_for()
        assert bob.locator("[data-spaces-line]").inner_text() == "The host ended this Space."
        assert bob.evaluate("window.spacesPeer") is None
        assert_no_horizontal_scroll(bob)
    finally:
        listener_context.close()
        host_context.close()
