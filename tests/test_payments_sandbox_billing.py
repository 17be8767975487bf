"""The sandbox billing provider, the embedded default: subscribing and topping up with test cards, no account anywhere."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from kernel import create_app, utcnow
from plugins.payments.models import billing_events, subscriptions
from plugins.payments.sandbox_billing import add_interval
from plugins.payments.service import PAYMENTS
from tests.conftest import UserClient, assert_error, make_settings, running, sign_up

PAYS, DECLINED = "4242 4242 4242 4242", "4000 0000 0000 0002"
CARD = {"card_number": PAYS, "expiry": "12/40", "cvc": "123"}


@pytest.fixture
def app(tmp_path: Path, database_url: str | None) -> Iterator[Starlette]:
    application = create_app(make_settings(tmp_path / "data", database_url))
    with running(application):
        yield application


@pytest.fixture
def carol(app: Starlette) -> UserClient:
    return sign_up(app, "carol")


def plans_of(client: UserClient) -> list[str]:
    return client.get("/api/entitlements").json()["plans"]


def checkout_id(response_json: dict) -> str:
    return response_json["checkout_url"].rsplit("/", 1)[1]


def subscribe(client: UserClient, card: dict | None = None) -> dict:
    opened = client.post("/api/payments/checkout", json={"plan": "premium"})
    assert opened.status_code == 201, opened.text
    paid = client.post(f"/api/payments/sandbox/checkouts/{checkout_id(opened.json())}/pay", json=card or CARD)
    assert paid.status_code == 200, paid.text
    return paid.json()


def test_the_checkout_for_a_plan_is_a_page_of_the_app_at_the_plan_s_price(carol: UserClient) -> None:
    opened = carol.post("/api/payments/checkout", json={"plan": "premium"})
    assert opened.status_code == 201
    body = opened.json()
    assert body["checkout_url"].startswith("http://testserver/payments/checkout/")
    assert (body["purpose"], body["plan"], body["amount"], body["currency"], body["status"]) == ("subscription", "premium", 800, "USD", "open")
    page = carol.get(body["checkout_url"])
    assert page.status_code == 200
    assert "4242 4242 4242 4242" in page.text and "$8.00" in page.text


def test_paying_with_the_test_card_grants_the_plan_through_the_kernel(app: Starlette, carol: UserClient) -> None:
    assert "premium" not in plans_of(carol)
    assert subscribe(carol)["status"] == "completed"
    assert "premium" in plans_of(carol)
    grants = app.state.kernel.entitlements.grants_of(app.state.kernel.user("carol").id)
    assert [(grant.plan, grant.source) for grant in grants] == [("premium", "subscription")]
    assert [item["kind"] for item in carol.get("/api/notifications").json()["results"]] == ["payments.subscribed"]


def test_the_subscription_shows_the_plan_and_its_renewal_date(carol: UserClient) -> None:
    subscribe(carol)
    found = carol.get("/api/payments/subscription").json()
    assert (found["plan"], found["status"], found["active"], found["renews"], found["provider"]) == ("premium", "active", True, True, "sandbox")
    renewal = found["current_period_end"]
    assert renewal[:10] > utcnow().date().isoformat()
    assert found["manage_url"] == "/payments/subscription"


def test_a_declined_card_changes_nothing_and_leaves_the_checkout_open(carol: UserClient) -> None:
    opened = carol.post("/api/payments/checkout", json={"plan": "premium"}).json()
    refused = carol.post(f"/api/payments/sandbox/checkouts/{checkout_id(opened)}/pay", json=CARD | {"card_number": DECLINED})
    assert_error(refused, 402, "card_declined")
    assert "premium" not in plans_of(carol)
    assert carol.get(f"/api/payments/checkouts/{opened['id']}").json()["status"] == "open"
    assert carol.get("/api/payments/subscription").json()["status"] == "none"


@pytest.mark.parametrize(
    ("card", "code"),
    [
        ({"card_number": "4242 4242 4242 4241"}, "invalid_card"),
        ({"card_number": "5555 5555 5555 4444"}, "test_card_only"),
        ({"expiry": "13/40"}, "invalid_expiry"),
        ({"expiry": "01/20"}, "card_expired"),
        ({"cvc": "12"}, "invalid_cvc"),
    ],
)
def test_a_bad_card_is_refused_with_a_clear_code(carol: UserClient, card: dict, code: str) -> None:
    opened = carol.post("/api/payments/checkout", json={"plan": "premium"}).json()
    assert_error(carol.post(f"/api/payments/sandbox/checkouts/{checkout_id(opened)}/pay", json=CARD | card), 422, code)


def test_a_checkout_is_paid_once(carol: UserClient) -> None:
    opened = carol.post("/api/payments/checkout", json={"plan": "premium"}).json()
    path = f"/api/payments/sandbox/checkouts/{checkout_id(opened)}/pay"
    assert carol.post(path, json=CARD).status_code == 200
    assert_error(carol.post(path, json=CARD), 409, "checkout_closed")


def test_someone_else_s_checkout_is_not_found(carol: UserClient, app: Starlette) -> None:
    opened = carol.post("/api/payments/checkout", json={"plan": "premium"}).json()
    mallory = sign_up(app, "mallory")
    assert_error(mallory.post(f"/api/payments/sandbox/checkouts/{checkout_id(opened)}/pay", json=CARD), 404, "not_found")
    assert_error(mallory.get(f"/api/payments/checkouts/{opened['id']}"), 404, "not_found")


def test_a_new_checkout_for_a_plan_closes_the_one_left_open_in_another_tab(carol: UserClient) -> None:
    first = carol.post("/api/payments/checkout", json={"plan": "premium"}).json()
    second = carol.post("/api/payments/checkout", json={"plan": "premium"}).json()
    assert_error(carol.post(f"/api/payments/sandbox/checkouts/{checkout_id(first)}/pay", json=CARD), 409, "checkout_closed")
    assert carol.post(f"/api/payments/sandbox/checkouts/{checkout_id(second)}/pay", json=CARD).status_code == 200
    assert carol.get(f"/api/payments/checkouts/{first['id']}").json()["status"] == "expired"


def test_paying_one_checkout_twice_at_once_makes_one_subscription(app: Starlette, carol: UserClient) -> None:
    opened = carol.post("/api/payments/checkout", json={"plan": "premium"}).json()
    path = f"/api/payments/sandbox/checkouts/{checkout_id(opened)}/pay"
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(lambda _: carol.post(path, json=CARD).status_code, range(4)))
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}
    rows = app.state.kernel.db.read(lambda conn: conn.execute(select(subscriptions)).all())
    assert len(rows) == 1
    grants = app.state.kernel.entitlements.grants_of(app.state.kernel.user("carol").id)
    assert len(grants) == 1


def test_a_subscriber_cannot_open_a_second_subscription(carol: UserClient) -> None:
    subscribe(carol)
    assert_error(carol.post("/api/payments/checkout", json={"plan": "premium"}), 409, "already_subscribed")


@pytest.mark.parametrize(("plan", "status", "code"), [("gold", 422, "unknown_plan"), ("free", 422, "not_for_sale")])
def test_only_a_priced_plan_can_be_bought(carol: UserClient, plan: str, status: int, code: str) -> None:
    assert_error(carol.post("/api/payments/checkout", json={"plan": plan}), status, code)


def test_cancelling_keeps_the_plan_to_the_end_of_the_period_then_ends_it(app: Starlette, carol: UserClient) -> None:
    subscribe(carol)
    cancelled = carol.post("/api/payments/subscription/cancel")
    assert cancelled.status_code == 200
    assert (cancelled.json()["cancel_at_period_end"], cancelled.json()["renews"], cancelled.json()["active"]) == (True, False, True)
    assert "premium" in plans_of(carol)
    # The period runs out; the periodic look ends the subscription.
    app.state.kernel.db.write(lambda conn: conn.execute(update(subscriptions).values(current_period_end=utcnow() - timedelta(minutes=1))))
    app.state.test_portal.call(PAYMENTS.of(app.state.kernel).billing.look)
    assert carol.get("/api/payments/subscription").json()["status"] == "canceled"
    assert "premium" not in plans_of(carol)


def test_resuming_a_cancelled_subscription_renews_it_again(carol: UserClient) -> None:
    subscribe(carol)
    carol.post("/api/payments/subscription/cancel")
    resumed = carol.post("/api/payments/subscription/resume").json()
    assert (resumed["cancel_at_period_end"], resumed["renews"]) == (False, True)


def test_the_sandbox_renews_a_subscription_at_the_end_of_its_period(app: Starlette, carol: UserClient) -> None:
    subscribe(carol)
    ending = utcnow().replace(microsecond=0) + timedelta(minutes=5)
    app.state.kernel.db.write(lambda conn: conn.execute(update(subscriptions).values(current_period_end=ending)))
    app.state.test_portal.call(PAYMENTS.of(app.state.kernel).billing.look)
    renewed = carol.get("/api/payments/subscription").json()
    assert renewed["status"] == "active" and renewed["current_period_end"][:10] > ending.date().isoformat()
    assert "premium" in plans_of(carol)


def test_cancelling_without_a_subscription_is_refused(carol: UserClient) -> None:
    assert_error(carol.post("/api/payments/subscription/cancel"), 409, "no_subscription")


def test_a_top_up_credits_the_wallet_once_paid(carol: UserClient) -> None:
    opened = carol.post("/api/payments/topups", json={"amount": 2500})
    assert opened.status_code == 201
    assert carol.get("/api/payments/wallet").json()["balance"] == 0
    paid = carol.post(f"/api/payments/sandbox/checkouts/{checkout_id(opened.json())}/pay", json=CARD).json()
    assert paid["status"] == "completed" and paid["transaction_id"]
    assert carol.get("/api/payments/wallet").json()["balance"] == 2500
    history = carol.get("/api/payments/transactions").json()["results"]
    assert [(item["kind"], item["amount"]) for item in history] == [("topup", 2500)]


@pytest.mark.parametrize("amount", [0, -100, 99, 10_000_01])
def test_a_top_up_outside_the_limits_is_refused(carol: UserClient, amount: int) -> None:
    assert_error(carol.post("/api/payments/topups", json={"amount": amount}), 422, "invalid_amount")


def test_a_top_up_amount_must_be_an_integer_of_cents(carol: UserClient) -> None:
    assert_error(carol.post("/api/payments/topups", json={"amount": "2500"}), 422, "validation_error")
    assert_error(carol.post("/api/payments/topups", json={"amount": 25.0}), 422, "validation_error")


def test_the_upsell_page_leads_to_the_plan_s_checkout(carol: UserClient) -> None:
    page = carol.get("/premium")
    assert 'href="/payments/subscribe/premium"' in page.text


def test_subscribing_through_the_pages_ends_on_the_plan_page(carol: UserClient) -> None:
    token = carol.headers["X-CSRF-Token"]
    to_checkout = carol.post("/payments/subscribe/premium", data={"csrf_token": token}, follow_redirects=False)
    assert to_checkout.status_code == 303
    checkout_page = to_checkout.headers["location"]
    declined = carol.post(checkout_page, data={"csrf_token": token, "card_number": DECLINED, "expiry": "12/40", "cvc": "123"})
    assert declined.status_code == 402 and "your card was declined" in declined.text
    paid = carol.post(checkout_page, data={"csrf_token": token, "card_number": PAYS, "expiry": "12/40", "cvc": "123"}, follow_redirects=False)
    plan_page = carol.get(paid.headers["location"])
    assert "Thank you! Your payment went through." in plan_page.text and "Renews on" in plan_page.text


def test_the_webhook_is_not_there_without_stripe(client) -> None:  # type: ignore[no-untyped-def]
    assert_error(client.post("/api/payments/stripe/webhook", content=b"{}"), 404, "not_found")


def test_two_processes_renewing_one_subscription_record_one_invoice_paid(tmp_path: Path, database_url: str | None) -> None:
    # Two kernels on one database are two processes of one deployment, as far as billing can tell.
    first, second = (create_app(make_settings(tmp_path / "data", database_url)) for _ in range(2))
    with running(first), running(second):
        carol = sign_up(first, "carol")
        subscribe(carol)
        ending = utcnow().replace(microsecond=0) + timedelta(minutes=5)
        first.state.kernel.db.write(lambda conn: conn.execute(update(subscriptions).values(current_period_end=ending)))
        subscription_id = first.state.kernel.db.read(lambda conn: conn.execute(select(subscriptions.c.subscription_id)).scalar_one())
        billings = [PAYMENTS.of(app.state.kernel).billing for app in (first, second)]
        # Both read the period's end before either renews it, as two periodic looks at once can.
        renewals = [billing.provider.renewal_event(billing.provider.refresh(subscription_id)) for billing in billings]  # type: ignore[attr-defined]
        applied = [app.state.test_portal.call(billing.apply, event) for app, billing, event in zip((first, second), billings, renewals, strict=True)]
        assert applied == [True, False]
        kinds = first.state.kernel.db.read(lambda conn: conn.execute(select(billing_events.c.type)).scalars().all())
        assert kinds.count("invoice.paid") == 1
        renewed = carol.get("/api/payments/subscription").json()
        assert renewed["current_period_end"][:19] == add_interval(ending, "month").isoformat()
