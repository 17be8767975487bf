"""In real Chromium, on a phone and a desktop: log in, open a profile, Pay, and see the money move; ask for money and be paid."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest

from kernel.settings import Settings
from plugins.payments.service import PAYMENTS
from tests.browser_kit import BROWSER_MARKS, VIEWPORTS, assert_no_horizontal_scroll, signed_up
from tests.conftest import PASSWORD, LiveServer, make_settings

pytestmark = BROWSER_MARKS


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The embedded database only: the pages draw on services whose tests run on PostgreSQL too.
    return make_settings(tmp_path / "data")


def fund(server: LiveServer, username: str, amount: int) -> None:
    """Put ``amount`` (minor units) in the user's wallet, as a completed top-up does."""
    kernel = server.server.config.app.state.kernel
    PAYMENTS.of(kernel).ledger.credit(kernel.user(username).id, amount, "topup", "Top-up")


def logged_in(browser: Any, server: LiveServer, username: str, device: str) -> Any:
    """A page of a new browser context, signed in through the log-in form."""
    context = browser.new_context(base_url=server.url, **VIEWPORTS[device])
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return page


@pytest.mark.parametrize("device", VIEWPORTS)
def test_pay_someone_from_their_profile_and_see_the_balance_change(browser: Any, live_server: LiveServer, device: str) -> None:
    suffix = secrets.token_hex(3)
    me, friend = f"ada_{suffix}", f"grace_{suffix}"
    signed_up(live_server.url, me, "Ada Lovelace").close()
    grace = signed_up(live_server.url, friend, "Grace Hopper")
    fund(live_server, me, 5000)
    phone = device == "phone"

    page = logged_in(browser, live_server, me, device)
    try:
        # The wallet, from the navigation: $50.00.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Wallet").click()
        page.wait_for_url("**/payments/")
        assert page.locator("[data-balance]").inner_text() == "$50.00"
        if phone:
            assert_no_horizontal_scroll(page)

        # Her profile's Pay button opens the send form, addressed to her.
        page.goto(f"/@{friend}")
        page.get_by_role("link", name="Pay", exact=True).click()
        page.wait_for_url(re.compile(rf".*/payments/send\?to={friend}$"))
        assert page.get_by_label("To").input_value() == friend
        assert "Grace Hopper" in page.locator(".payments-person").inner_text()
        if phone:
            assert_no_horizontal_scroll(page)

        # A typo is refused next to the amount, and nothing moves.
        page.get_by_label("Amount").fill("12.5.0")
        page.get_by_role("button", name="Send money").click()
        error = page.locator("#send-amount-error")
        error.wait_for()
        assert error.inner_text() == "Enter the amount as a number, such as 12.50."
        assert page.get_by_label("Amount").get_attribute("aria-invalid") == "true"

        # Send $12.50 with a note: back on the wallet, the notice and the new balance.
        page.get_by_label("Amount").fill("12.50")
        page.get_by_label("Note").fill("Thanks for the compiler")
        page.get_by_role("button", name="Send money").click()
        page.wait_for_url("**/payments/?done=sent")
        assert page.get_by_role("status").inner_text() == f"You sent $12.50 to Grace Hopper (@{friend})."
        assert page.locator("[data-balance]").inner_text() == "$37.50"
        row = page.locator(".payments-tx").first
        assert "Grace Hopper" in row.inner_text() and "Thanks for the compiler" in row.inner_text()
        assert row.locator(".payments-tx-amount").inner_text() == "−$12.50"
        if phone:
            assert_no_horizontal_scroll(page)

        # She has it.
        assert grace.get("/api/payments/wallet").json()["balance"] == 1250
    finally:
        page.context.close()
        grace.close()


def test_ask_for_money_from_a_profile_and_be_paid(browser: Any, live_server: LiveServer) -> None:
    suffix = secrets.token_hex(3)
    me, friend = f"ada_{suffix}", f"grace_{suffix}"
    signed_up(live_server.url, me, "Ada Lovelace").close()
    signed_up(live_server.url, friend, "Grace Hopper").close()
    fund(live_server, friend, 2000)

    asker = logged_in(browser, live_server, me, "phone")
    payer = logged_in(browser, live_server, friend, "phone")
    try:
        # Ada asks Grace for $8 from Grace's profile.
        asker.goto(f"/@{friend}")
        asker.get_by_role("link", name="Request", exact=True).click()
        asker.wait_for_url(re.compile(rf".*/payments/request\?from={friend}$"))
        asker.get_by_label("Amount").fill("8")
        asker.get_by_label("Note").fill("Cinema")
        asker.get_by_role("button", name="Request money").click()
        asker.wait_for_url("**/payments/?done=requested")
        assert asker.locator("[data-outgoing]").get_by_role("button", name="Cancel").is_visible()

        # Grace sees it on her wallet and accepts it.
        payer.goto("/payments/")
        incoming = payer.locator("[data-incoming]")
        assert "Cinema" in incoming.inner_text() and "$8.00" in incoming.inner_text()
        assert_no_horizontal_scroll(payer)
        incoming.get_by_role("button", name="Accept").click()
        payer.wait_for_url("**/payments/?done=paid")
        assert payer.locator("[data-balance]").inner_text() == "$12.00"
        assert payer.locator("[data-incoming]").count() == 0

        # Ada has been paid.
        asker.goto("/payments/")
        assert asker.locator("[data-balance]").inner_text() == "$8.00"
        assert asker.locator("[data-outgoing]").count() == 0
    finally:
        asker.context.close()
        payer.context.close()
