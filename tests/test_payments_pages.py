"""The payments plugin's pages through HTTP: the wallet, sending, requests, savings, the history, the profile buttons."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kernel import create_app, utcnow
from plugins.payments.service import PAYMENTS
from tests.conftest import UserClient, make_settings, running, sign_up
from tests.test_pages import HTML, csrf_of


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Starlette]:
    # The embedded database only: the pages draw on services whose tests run on PostgreSQL too.
    application = create_app(make_settings(tmp_path / "data", plugins={"payments": {"savings_rate": 0.05}}))
    with running(application):
        yield application


@pytest.fixture
def alice(app: Starlette) -> UserClient:
    return sign_up(app, "alice", display_name="Alice Liddell")


@pytest.fixture
def bob(app: Starlette) -> UserClient:
    return sign_up(app, "bob_b", display_name="Bob Builder")


def page(client: TestClient, path: str, status: int = 200) -> str:
    response = client.get(path, headers=HTML)
    assert response.status_code == status, response.text
    return response.text


def fund(app: Starlette, username: str, amount: int) -> None:
    """Put ``amount`` (minor units) in the user's wallet, as a completed top-up does."""
    kernel = app.state.kernel
    PAYMENTS.of(kernel).ledger.credit(kernel.user(username).id, amount, "topup", "Top-up")


def balance(app: Starlette, username: str) -> int:
    kernel = app.state.kernel
    return PAYMENTS.of(kernel).ledger.balances(kernel.user(username).id)["wallet"]


def form_of(text: str, action: str) -> str:
    """The first form posting to ``action``."""
    match = re.search(rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>', text, re.S)
    assert match, f"the page has a form posting to {action}"
    return match.group(1)


def hidden(form: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', form)
    assert match, f"the form carries {name}"
    return match.group(1)


def submit(client: UserClient, on: str, action: str, data: dict[str, str], form_action: str | None = None) -> httpx.Response:
    """Post the form of page ``on`` that posts to ``action``, as a browser does: its hidden fields plus ``data``.

    ``form_action``: the form's own action, when a button sends it to ``action`` instead (``formaction``).
    """
    form = form_of(page(client, on), form_action or action)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    return client.post(action, data={**fields, **data}, headers=HTML, follow_redirects=False)


def notice(text: str) -> str | None:
    match = re.search(r'<p class="notice" role="status">(.*?)</p>', text, re.S)
    return html.unescape(match.group(1)) if match else None


def field_error(text: str, field_id: str) -> str | None:
    match = re.search(rf'<p class="field-error" id="{field_id}-error" role="alert">(.*?)</p>', text, re.S)
    return html.unescape(match.group(1)) if match else None


def shown_balance(text: str) -> str:
    match = re.search(r"data-balance>([^<]+)<", text)
    assert match, "the page shows the balance"
    return match.group(1)


def history_rows(text: str) -> list[dict[str, str]]:
    """The history's rows, in order: kind, who, note, amount, date."""
    rows = []
    for kind, body in re.findall(r'<li class="payments-tx [^"]*" data-transaction-id="\d+" data-kind="([^"]+)">(.*?)</li>', text, re.S):
        def part(pattern: str, body: str = body) -> str:
            found = re.search(pattern, body, re.S)
            return re.sub(r"<[^>]+>", "", found.group(1)).strip() if found else ""

        rows.append(
            {
                "kind": kind,
                "who": part(r'class="payments-name"[^>]*>(.*?)</(?:a|strong)>'),
                "label": part(r'<span class="payments-kind">(.*?)</span>'),
                "note": part(r'<span class="payments-note">(.*?)</span>'),
                "amount": part(r'<strong class="payments-tx-amount">(.*?)</strong>'),
                "date": part(r"<time datetime=\"[^\"]+\">(.*?)</time>"),
            }
        )
    return rows


def profile_buttons(text: str) -> dict[str, str]:
    block = re.search(r'<div class="actions">(.*?)</div>', text, re.S)
    assert block, "the profile has an actions row"
    return {label.strip(): href.replace("&amp;", "&") for href, label in re.findall(r'<a class="button[^"]*" href="([^"]+)">(.*?)</a>', block.group(1))}


def send(client: UserClient, to: str, amount: str, note: str = "") -> httpx.Response:
    return submit(client, "/payments/", "/payments/send", {"to": to, "amount": amount, "note": note})


# The wallet -----------------------------------------------------------------------------------


def test_the_wallet_asks_a_signed_out_visitor_to_log_in(client: TestClient) -> None:
    response = client.get("/payments/", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/payments/"


def test_the_wallet_shows_the_balance_and_savings_as_money(app: Starlette, alice: UserClient) -> None:
    fund(app, "alice", 123456)
    shown = page(alice, "/payments/")
    assert shown_balance(shown) == "$1,234.56"
    assert re.search(r"data-savings>\$0\.00<", shown)


def test_the_navigation_has_a_wallet_for_signed_in_users_only(app: Starlette, alice: UserClient, client: TestClient) -> None:
    assert '<a href="/payments/" aria-current="page">Wallet</a>' in page(alice, "/payments/")
    assert 'href="/payments/"' not in page(client, "/directory")


def test_the_wallet_links_to_ones_plan_and_to_adding_money(alice: UserClient) -> None:
    shown = page(alice, "/payments/")
    assert re.search(r'<h2 id="plan-title"><a href="/payments/subscription">Your plan</a></h2>', shown)
    assert "<strong data-plan>Free</strong>" in shown
    assert '<a class="button primary" href="/payments/topup">Add money</a>' in shown


def test_the_wallet_says_so_when_there_are_no_transactions(alice: UserClient) -> None:
    assert "No transactions yet." in page(alice, "/payments/")


# Profile buttons ------------------------------------------------------------------------------


def test_someone_elses_profile_has_pay_and_request(alice: UserClient, bob: UserClient) -> None:
    buttons = profile_buttons(page(alice, "/@bob_b"))
    assert buttons["Pay"] == "/payments/send?to=bob_b"
    assert buttons["Request"] == "/payments/request?from=bob_b"


def test_ones_own_profile_has_no_pay_or_request(alice: UserClient) -> None:
    buttons = profile_buttons(page(alice, "/@alice"))
    assert "Pay" not in buttons and "Request" not in buttons


def test_a_signed_out_visitor_gets_no_pay_or_request(client: TestClient, bob: UserClient) -> None:
    buttons = profile_buttons(page(client, "/@bob_b"))
    assert "Pay" not in buttons and "Request" not in buttons


@pytest.mark.parametrize("blocker", ["alice", "bob_b"])
def test_no_pay_or_request_across_a_block(alice: UserClient, bob: UserClient, blocker: str) -> None:
    (alice if blocker == "alice" else bob).put(f"/api/blocks/{'bob_b' if blocker == 'alice' else 'alice'}").raise_for_status()
    buttons = profile_buttons(page(alice, "/@bob_b"))
    assert "Pay" not in buttons and "Request" not in buttons


# Sending --------------------------------------------------------------------------------------


def test_the_send_page_is_filled_in_from_its_link(alice: UserClient, bob: UserClient) -> None:
    shown = page(alice, "/payments/send?to=bob_b&amount=12.50&note=Pizza+night")
    form = form_of(shown, "/payments/send")
    assert 'name="to" value="bob_b"' in form
    assert 'name="amount" value="12.50"' in form
    assert 'name="note" value="Pizza night"' in form
    assert "<strong>Bob Builder</strong>" in shown


def test_the_send_page_says_at_once_when_there_is_no_such_user(alice: UserClient) -> None:
    assert field_error(page(alice, "/payments/send?to=nobody_here"), "send-to") == "There is no user @nobody_here."


def test_sending_moves_the_money_and_says_so_once(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    fund(app, "alice", 5000)
    response = send(alice, "@bob_b", "12.50", "pizza")
    assert response.status_code == 303
    assert response.headers["location"] == "/payments/?done=sent"
    shown = page(alice, response.headers["location"])
    assert notice(shown) == "You sent $12.50 to Bob Builder (@bob_b)."
    assert shown_balance(shown) == "$37.50"
    assert balance(app, "bob_b") == 1250
    assert notice(page(alice, "/payments/?done=sent")) is None


@pytest.mark.parametrize(
    ("typed", "cents"),
    [("12.50", 1250), ("12.5", 1250), ("$12.50", 1250), ("12", 1200), (" 1,200.00 ", 120000), ("12,50", 1250), (".75", 75), ("0.01", 1)],
)
def test_amounts_are_read_as_people_type_them(app: Starlette, alice: UserClient, bob: UserClient, typed: str, cents: int) -> None:
    fund(app, "alice", 200000)
    assert send(alice, "bob_b", typed).status_code == 303
    assert balance(app, "bob_b") == cents


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter an amount, such as 12.50."),
        ("twelve", "Enter the amount as a number, such as 12.50."),
        ("-5", "Enter an amount above zero."),
        ("0.00", "Enter an amount above zero."),
        ("1.234", "Use at most two digits after the point, such as 12.50."),
        ("9999999999", "Enter an amount from $0.01 to $1,000,000.00."),
    ],
)
def test_a_bad_amount_is_refused_next_to_its_field_and_nothing_moves(app: Starlette, alice: UserClient, bob: UserClient, typed: str, message: str) -> None:
    fund(app, "alice", 5000)
    response = send(alice, "bob_b", typed, "pizza")
    assert response.status_code == 422
    assert field_error(response.text, "send-amount") == message
    assert 'aria-describedby="send-amount-error"' in response.text
    form = form_of(response.text, "/payments/send")
    assert 'name="to" value="bob_b"' in form and 'name="note" value="pizza"' in form
    assert balance(app, "alice") == 5000 and balance(app, "bob_b") == 0


def test_sending_to_nobody_is_refused_next_to_the_recipient(app: Starlette, alice: UserClient) -> None:
    fund(app, "alice", 5000)
    response = send(alice, "nobody_here", "5")
    assert response.status_code == 404
    assert field_error(response.text, "send-to") == "There is no user @nobody_here."
    assert balance(app, "alice") == 5000


def test_sending_to_oneself_is_refused(app: Starlette, alice: UserClient) -> None:
    fund(app, "alice", 5000)
    response = send(alice, "alice", "5")
    assert response.status_code == 422
    assert field_error(response.text, "send-to") == "You can't send money to yourself."
    assert balance(app, "alice") == 5000


def test_sending_more_than_the_wallet_holds_is_refused_next_to_the_amount(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    fund(app, "alice", 1000)
    response = send(alice, "bob_b", "10.01")
    assert response.status_code == 409
    assert field_error(response.text, "send-amount") == "That is more than your wallet holds."
    assert balance(app, "alice") == 1000 and balance(app, "bob_b") == 0


def test_sending_across_a_block_is_refused(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    fund(app, "alice", 1000)
    bob.put("/api/blocks/alice").raise_for_status()
    response = send(alice, "bob_b", "5")
    assert response.status_code == 403
    assert '<p class="error" role="alert">You can&#39;t send money to this account or ask it for money.</p>' in response.text
    assert balance(app, "bob_b") == 0


def test_a_double_submit_sends_once(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    fund(app, "alice", 5000)
    form = form_of(page(alice, "/payments/send?to=bob_b"), "/payments/send")
    data = {"csrf_token": hidden(form, "csrf_token"), "idempotency_key": hidden(form, "idempotency_key"), "to": "bob_b", "amount": "20", "note": ""}
    first = alice.post("/payments/send", data=data, headers=HTML, follow_redirects=False)
    second = alice.post("/payments/send", data=data, headers=HTML, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert balance(app, "alice") == 3000 and balance(app, "bob_b") == 2000


def test_a_form_whose_key_paid_something_else_is_refused_and_gets_a_new_key(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    fund(app, "alice", 5000)
    form = form_of(page(alice, "/payments/send?to=bob_b"), "/payments/send")
    data = {"csrf_token": hidden(form, "csrf_token"), "idempotency_key": hidden(form, "idempotency_key"), "to": "bob_b", "note": ""}
    assert alice.post("/payments/send", data={**data, "amount": "20"}, headers=HTML, follow_redirects=False).status_code == 303
    # Back to the same form (the browser's Back button), another amount:
    again = alice.post("/payments/send", data={**data, "amount": "30"}, headers=HTML, follow_redirects=False)
    assert again.status_code == 409
    assert "This form was already used for another payment" in html.unescape(again.text)
    assert hidden(form_of(again.text, "/payments/send"), "idempotency_key") != data["idempotency_key"]
    assert balance(app, "bob_b") == 2000


def test_each_drawing_of_the_send_form_has_its_own_key(alice: UserClient) -> None:
    first = hidden(form_of(page(alice, "/payments/"), "/payments/send"), "idempotency_key")
    second = hidden(form_of(page(alice, "/payments/"), "/payments/send"), "idempotency_key")
    assert first and second and first != second


def test_a_send_without_the_csrf_token_is_refused(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    fund(app, "alice", 5000)
    anonymous_form = {"to": "bob_b", "amount": "5", "idempotency_key": "k1"}
    alice.headers.pop("X-CSRF-Token")
    assert alice.post("/payments/send", data=anonymous_form, headers=HTML, follow_redirects=False).status_code == 403
    assert balance(app, "bob_b") == 0


def test_back_from_a_top_up_the_wallet_says_whether_the_money_arrived(app: Starlette, alice: UserClient) -> None:
    kernel = app.state.kernel
    checkout = PAYMENTS.of(kernel).billing.checkouts.create(kernel.user("alice").id, "sandbox", "topup", 2500, "USD")
    assert notice(page(alice, f"/payments/?topup={checkout.id}")) == "Your payment of $25.00 is being confirmed. It shows here once it arrives."
    assert notice(page(alice, "/payments/?topup=someone-elses")) is None


def test_a_notice_cannot_be_forged_with_a_cookie(alice: UserClient) -> None:
    alice.cookies.set("payments_notice", "WW91IHdvbiAkMSwwMDA.0000", path="/payments")
    assert notice(page(alice, "/payments/")) is None


# The history ------------------------------------------------------------------------------------


def test_the_history_shows_who_what_how_much_and_when_from_each_side(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    fund(app, "alice", 5000)
    send(alice, "bob_b", "12.50", "pizza")
    alices = history_rows(page(alice, "/payments/"))
    assert [(row["kind"], row["who"], row["label"], row["note"], row["amount"]) for row in alices] == [
        ("transfer", "Bob Builder", "Sent", "pizza", "−$12.50"),
        ("topup", "Added money", "Top-up", "", "+$50.00"),
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", alices[0]["date"])
    bobs = history_rows(page(bob, "/payments/"))
    assert [(row["who"], row["label"], row["note"], row["amount"]) for row in bobs] == [("Alice Liddell", "Received", "pizza", "+$12.50")]


def test_the_history_pages_on_with_older_transactions(app: Starlette, alice: UserClient) -> None:
    for number in range(25):
        fund(app, "alice", 100 + number)
    first = page(alice, "/payments/")
    assert [row["amount"] for row in history_rows(first)] == [f"+${(100 + n) / 100:.2f}" for n in range(24, 4, -1)]
    older = re.search(r'<a class="button" href="(/payments/\?cursor=[^"#]+)#history">Older transactions</a>', first)
    assert older, "the first page links to older transactions"
    second = page(alice, older.group(1).replace("&amp;", "&"))
    assert [row["amount"] for row in history_rows(second)] == [f"+${(100 + n) / 100:.2f}" for n in range(4, -1, -1)]
    assert "Older transactions</a>" not in second
    assert 'action="/payments/send"' not in second


# Requests -----------------------------------------------------------------------------------------


def test_the_request_page_is_filled_in_from_its_link(alice: UserClient, bob: UserClient) -> None:
    shown = page(alice, "/payments/request?from=bob_b")
    assert 'name="from" value="bob_b"' in form_of(shown, "/payments/request")
    assert "<strong>Bob Builder</strong>" in shown


def test_a_request_waits_on_the_payers_wallet_with_accept_and_decline(alice: UserClient, bob: UserClient) -> None:
    response = submit(alice, "/payments/request?from=bob_b", "/payments/request", {"from": "bob_b", "amount": "8", "note": "cinema"})
    assert response.status_code == 303
    assert notice(page(alice, response.headers["location"])) == "You asked Bob Builder (@bob_b) for $8.00."
    bobs = page(bob, "/payments/")
    incoming = re.search(r"<ul [^>]*data-incoming>(.*?)</ul>", bobs, re.S)
    assert incoming, "Bob's wallet lists the request"
    assert "Alice Liddell" in incoming.group(1) and "$8.00" in incoming.group(1) and "cinema" in incoming.group(1)
    assert re.search(r'action="/payments/requests/\d+/accept"', incoming.group(1))
    assert re.search(r'action="/payments/requests/\d+/decline"', incoming.group(1))
    alices = page(alice, "/payments/")
    outgoing = re.search(r"<ul [^>]*data-outgoing>(.*?)</ul>", alices, re.S)
    assert outgoing and re.search(r'action="/payments/requests/\d+/cancel"', outgoing.group(1))


def test_a_bad_request_amount_is_refused_next_to_its_field(alice: UserClient, bob: UserClient) -> None:
    response = submit(alice, "/payments/", "/payments/request", {"from": "bob_b", "amount": "1.5.0"})
    assert response.status_code == 422
    assert field_error(response.text, "ask-amount") == "Enter the amount as a number, such as 12.50."
    assert "data-incoming" not in page(bob, "/payments/")


def request_id(text: str) -> str:
    match = re.search(r'action="/payments/requests/(\d+)/', text)
    assert match, "a pending request is listed"
    return match.group(1)


def test_accepting_a_request_pays_it(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    fund(app, "bob_b", 1000)
    submit(alice, "/payments/", "/payments/request", {"from": "bob_b", "amount": "8", "note": "cinema"})
    number = request_id(page(bob, "/payments/"))
    response = submit(bob, "/payments/", f"/payments/requests/{number}/accept", {})
    assert response.status_code == 303
    shown = page(bob, response.headers["location"])
    assert notice(shown) == "You paid Alice Liddell (@alice) $8.00."
    assert "data-incoming" not in shown
    assert history_rows(shown)[0] | {"date": ""} == {"kind": "request", "who": "Alice Liddell", "label": "Paid a request", "note": "cinema", "amount": "−$8.00", "date": ""}
    assert balance(app, "alice") == 800 and balance(app, "bob_b") == 200


def test_accepting_twice_pays_once(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    fund(app, "bob_b", 1000)
    submit(alice, "/payments/", "/payments/request", {"from": "bob_b", "amount": "8"})
    action = f"/payments/requests/{request_id(page(bob, '/payments/'))}/accept"
    token = csrf_of(page(bob, "/payments/"))
    statuses = [bob.post(action, data={"csrf_token": token}, headers=HTML, follow_redirects=False).status_code for _ in range(2)]
    assert statuses == [303, 303]
    assert balance(app, "alice") == 800


def test_accepting_without_the_money_keeps_the_request_waiting(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    submit(alice, "/payments/", "/payments/request", {"from": "bob_b", "amount": "8"})
    number = request_id(page(bob, "/payments/"))
    response = submit(bob, "/payments/", f"/payments/requests/{number}/accept", {})
    assert response.status_code == 409
    assert '<p class="field-error payments-request-error" role="alert">Your wallet holds less than this request. Add money first.</p>' in response.text
    assert request_id(page(bob, "/payments/")) == number


def test_declining_a_request_moves_nothing_and_takes_it_off_both_wallets(app: Starlette, alice: UserClient, bob: UserClient) -> None:
    fund(app, "bob_b", 1000)
    submit(alice, "/payments/", "/payments/request", {"from": "bob_b", "amount": "8"})
    response = submit(bob, "/payments/", f"/payments/requests/{request_id(page(bob, '/payments/'))}/decline", {})
    assert notice(page(bob, response.headers["location"])) == "You declined the request from Alice Liddell (@alice) for $8.00."
    assert "data-outgoing" not in page(alice, "/payments/")
    assert balance(app, "bob_b") == 1000


def test_the_requester_can_cancel_a_request(alice: UserClient, bob: UserClient) -> None:
    submit(alice, "/payments/", "/payments/request", {"from": "bob_b", "amount": "8"})
    response = submit(alice, "/payments/", f"/payments/requests/{request_id(page(alice, '/payments/'))}/cancel", {})
    assert notice(page(alice, response.headers["location"])) == "You cancelled your request to Bob Builder (@bob_b) for $8.00."
    assert "data-incoming" not in page(bob, "/payments/")


# Savings ------------------------------------------------------------------------------------------


def test_savings_show_the_annual_rate_and_interest_earned(alice: UserClient) -> None:
    shown = page(alice, "/payments/")
    assert "<dd data-savings-rate>5%</dd>" in shown
    assert "<dd data-interest-earned>$0.00</dd>" in shown


def test_moving_money_to_savings_and_back(app: Starlette, alice: UserClient) -> None:
    fund(app, "alice", 5000)
    response = submit(alice, "/payments/", "/payments/savings/deposit", {"amount": "30"})
    assert notice(page(alice, response.headers["location"])) == "You moved $30.00 to savings."
    response = submit(alice, "/payments/", "/payments/savings/withdraw", {"amount": "10"}, "/payments/savings/deposit")
    shown = page(alice, response.headers["location"])
    assert notice(shown) == "You moved $10.00 from savings to your wallet."
    assert shown_balance(shown) == "$30.00"
    assert "<dd data-savings-balance>$20.00</dd>" in shown
    assert [(row["label"], row["amount"]) for row in history_rows(shown)[:2]] == [("From savings", "+$10.00"), ("To savings", "−$30.00")]


def test_withdrawing_more_than_savings_hold_is_refused_next_to_the_amount(app: Starlette, alice: UserClient) -> None:
    fund(app, "alice", 5000)
    response = submit(alice, "/payments/", "/payments/savings/withdraw", {"amount": "1"}, "/payments/savings/deposit")
    assert response.status_code == 409
    assert field_error(response.text, "savings-amount") == "That is more than your savings hold."
    assert balance(app, "alice") == 5000


def test_interest_shows_in_the_history_and_the_total_earned(app: Starlette, alice: UserClient) -> None:
    fund(app, "alice", 1_000_000_00)
    submit(alice, "/payments/", "/payments/savings/deposit", {"amount": "1000000"})
    PAYMENTS.of(app.state.kernel).savings.accrue_interest(utcnow().date())
    shown = page(alice, "/payments/")
    # $1,000,000 at 5% a year is $136.98 a day, floored.
    assert "<dd data-interest-earned>$136.98</dd>" in shown
    assert (history_rows(shown)[0]["who"], history_rows(shown)[0]["label"], history_rows(shown)[0]["amount"]) == ("Savings interest", "Interest", "+$136.98")
