"""In real Chromium: sign up, search the directory as you type, open a profile and follow, on a phone and a desktop."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
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
VIEWPORTS = {
    "phone": {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2},
    "desktop": {"viewport": {"width": 1280, "height": 800}},
}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.mark.parametrize("device", VIEWPORTS)
def test_sign_up_find_someone_and_follow_them(browser, live_server: LiveServer, device: str) -> None:  # type: ignore[no-untyped-def]
    suffix = secrets.token_hex(3)
    target = f"grace_{suffix}"
    seeded = httpx.post(
        f"{live_server.url}/api/auth/signup",
        json={"username": target, "password": PASSWORD, "display_name": "Grace Hopper"},
        timeout=30,
    )
    assert seeded.status_code == 201

    context = browser.new_context(base_url=live_server.url, **VIEWPORTS[device])
    page = context.new_page()
    try:
        page.goto("/signup")
        page.fill("input[name=username]", f"ada_{suffix}")
        page.fill("input[name=display_name]", "Ada Lovelace")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]:has-text('Sign up')")
        page.wait_for_url(f"**/@ada_{suffix}")
        assert page.locator("h1").inner_text().startswith("Ada Lovelace")

        page.goto("/directory")
        page.locator("#directory-q").press_sequentially("grace h", delay=40)
        result = page.locator(f"#directory-results a[href='/@{target}']")
        result.wait_for()
        assert "Grace Hopper" in result.inner_text()
        assert "/directory?q=grace" in page.url  # the script keeps the address shareable
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        result.click()
        page.wait_for_url(f"**/@{target}")
        assert page.locator("h1").inner_text().startswith("Grace Hopper")
        assert f"@{target}" in page.locator(".handle").first.inner_text()
        counts = page.locator(".counts")
        assert "0 Followers" in " ".join(counts.inner_text().split())
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        page.click("button:has-text('Follow')")
        page.wait_for_selector("button:has-text('Unfollow')")
        assert "1 Followers" in " ".join(page.locator(".counts").inner_text().split())
    finally:
        context.close()
