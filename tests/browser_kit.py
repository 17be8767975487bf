"""What the browser tests share: Debian's Chromium driven by Playwright, the screens, and a few helpers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS: dict[str, dict[str, Any]] = {
    "phone": {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2},
    "desktop": {"viewport": {"width": 1280, "height": 800}},
}

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)"),
]


def launched_chromium(extra_args: list[str] | None = None) -> Iterator[Any]:
    """Debian's Chromium under Playwright, with the kit's arguments and ``extra_args``; for module fixtures."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *(extra_args or [])])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launched_chromium()


def assert_no_horizontal_scroll(page: Any) -> None:
    """The page fits the screen's width.

    With ``is_mobile`` Chromium widens the layout viewport to fit content that
    overflows, so ``window.innerWidth`` grows along with the page; compare with
    the device's width instead.
    """
    screen = page.viewport_size["width"]
    content, window = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert content <= screen and window <= screen, f"{page.url} scrolls sideways: content is {content} px wide on a {screen} px screen"


def signed_up(base_url: str, username: str, display_name: str) -> httpx.Client:
    """An account made through the API on a live server, as an httpx client holding its session and CSRF token."""
    client = httpx.Client(base_url=base_url, timeout=30)
    response = client.post("/api/auth/signup", json={"username": username, "password": PASSWORD, "display_name": display_name})
    assert response.status_code == 201, response.text
    client.headers["X-CSRF-Token"] = response.headers["X-CSRF-Token"]
    return client


CALL_ARGS = [
    "--use-fake-ui-for-media-stream",  # grant camera and microphone without asking
    "--use-fake-device-for-media-stream",  # a test pattern and a beep instead of real devices
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]

# What the calls page's peer connection has received so far, by kind.
CALL_INBOUND = """async () => {
  const pc = window.everythingCalls && window.everythingCalls.peer;
  if (!pc) return {};
  const received = {};
  (await pc.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp") received[report.kind] = (received[report.kind] || 0) + (report.packetsReceived || 0);
  });
  return received;
}"""


def received_media(page: Any, timeout: float = 20) -> dict[str, int]:
    """Wait until the page's call has received audio and video packets; what it received."""
    deadline = time.monotonic() + timeout
    while True:
        received = page.evaluate(CALL_INBOUND)
        if received.get("audio", 0) > 0 and received.get("video", 0) > 0:
            return received
        assert time.monotonic() < deadline, f"{page.url}: no inbound audio and video within {timeout} s: {received}"
        page.wait_for_timeout(250)
