"""In real Chromium: going premium on a fresh install through the sandbox's checkout page, on a phone and a desktop."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel import create_app
from tests.browser_kit import BROWSER_MARKS, VIEWPORTS, assert_no_horizontal_scroll, browser  # noqa: F401
from tests.conftest import PASSWORD, LiveServer, make_settings

pytestmark = BROWSER_MARKS


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(create_app(make_settings(tmp_path / "data"))) as live:
        yield live


def signed_up(browser: Any, server: LiveServer, device: str) -> Any:  # noqa: F811
    context = browser.new_context(base_url=server.url, **VIEWPORTS[device])
    context.set_default_timeout(15_000)
    response = context.request.post("/api/auth/signup", data={"username": f"buyer_{secrets.token_hex(3)}", "password": PASSWORD})
    assert response.status == 201, response.text()
    return context


@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_going_premium_from_the_upsell_with_a_declined_then_a_good_test_card(browser: Any, server: LiveServer, device: str) -> None:  # noqa: F811
    page = signed_up(browser, server, device).new_page()
    page.goto("/premium")
    page.get_by_role("link", name="Subscribe to Premium").click()
    page.get_by_role("button", name="Continue to payment").click()
    page.wait_for_url(re.compile(r".*/payments/checkout/"))
    assert_no_horizontal_scroll(page)

    page.get_by_label("Card number").fill("4000 0000 0000 0002")
    page.get_by_label("Expiry (MM/YY)").fill("12/40")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name=re.compile("Pay \\$8.00")).click()
    assert page.get_by_text("your card was declined").is_visible()

    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name=re.compile("Pay \\$8.00")).click()
    page.wait_for_url(re.compile(r".*/payments/subscription\?checkout="))
    assert page.get_by_text("Thank you! Your payment went through.").is_visible()
    assert page.get_by_text(re.compile("Renews on")).is_visible()
    assert_no_horizontal_scroll(page)

    page.goto("/premium")
    assert page.get_by_text("Your plan").first.is_visible()

    page.goto("/payments/subscription")
    page.get_by_role("button", name="Cancel subscription").click()
    assert page.get_by_text(re.compile("you keep the plan until")).is_visible()
    page.get_by_role("button", name="Resume subscription").click()
    assert page.get_by_text(re.compile("Renews on")).is_visible()
