"""The payments plugin's pages under ``/payments/``, and the Pay and Request buttons on profiles.

- ``/payments/`` is the wallet: the balance and savings, a send form and a
  request form, the payment requests waiting on the viewer (Accept, Decline)
  and those they sent (Cancel), savings (deposit, withdraw, the annual rate
  and the interest earned), the transaction history (``?cursor=`` pages on
  through older transactions), and links to one's plan
  (``/payments/subscription``) and to adding money (``/payments/topup``).
- ``/payments/send?to=&amount=&note=`` is the send form on a page of its own,
  pre-filled: the profile's Pay button leads there.
- ``/payments/request?from=&amount=&note=`` asks someone for money: the
  profile's Request button leads there.

Every form posts with the kernel's CSRF token and, once done, redirects to
the wallet (post-redirect-get) with a one-time notice ("You sent $12.50 to
Bob"), carried by a short-lived signed cookie so that no link can make the
page claim something happened. A refused form is shown again with what was
typed and the error next to the field it is about; nothing has moved.
Amounts are typed as people write them (``12.50``, ``$1,200``, ``12,5``)
and become integer minor units here. The send and savings forms carry an
idempotency key made when the form is drawn, so a double-submit moves the
money once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import (
    ApiError,
    NavItem,
    ProfileAction,
    User,
    current_user,
    get_kernel,
    login_redirect,
    read_form,
    redirect,
    render,
)
from plugins.payments.checkouts import COMPLETED, OPEN
from plugins.payments.money import money, parse_amount
from plugins.payments.payment_requests import INCOMING, OUTGOING, PENDING
from plugins.payments.service import PAYMENTS, Payments

PAGE_SIZE = 20
# How many pending requests each list of the wallet shows.
REQUESTS_SHOWN = 50
STATIC = "/static/plugins/payments"
NOTE_MAX = 280
USERNAME_MAX = 64
NOTICE_COOKIE = "payments_notice"
MINUS = "\u2212"

# What a transaction was, in the history, when it is the same either way.
KIND_LABELS = {
    "topup": "Top-up",
    "interest": "Interest",
    "reversal": "Reversal",
    "savings_deposit": "To savings",
    "savings_withdraw": "From savings",
}
# Its title when there is no other person: money from or to the world outside, or one's own savings.
KIND_TITLES = {
    "topup": "Added money",
    "interest": "Savings interest",
    "savings_deposit": "Moved to savings",
    "savings_withdraw": "Moved from savings",
    "reversal": "Reversed payment",
}


def _payments(request: Request) -> Payments:
    return PAYMENTS.of(get_kernel(request))


# Amounts ----------------------------------------------------------------------------------

def signed_money(amount: int, currency: str) -> str:
    """``+$12.50`` for money in, ``−$12.50`` (a true minus) for money out."""
    return ("+" if amount > 0 else MINUS if amount < 0 else "") + money(abs(amount), currency)


def field_errors(error: ApiError, payments: Payments, who: str = "to", name: str = "") -> dict[str, str]:
    """A refusal as ``{field: message}`` for a form (``""`` for the form as a whole), in a person's words.

    :param who: the form's field naming the other person (``to`` or ``from``).
    :param name: the username typed there.
    """
    currency = payments.settings.currency
    limit = money(payments.settings.max_transfer, currency)
    words = {
        "invalid_amount": ("amount", f"Enter an amount from {money(1, currency)} to {limit}."),
        # "amount: more than your wallet holds." (or "savings hold")
        "insufficient_funds": ("amount", "That is " + error.message.removeprefix("amount: ")),
        "unknown_user": (who, f"There is no user @{name}."),
        "self_transfer": (who, "You can't send money to yourself."),
        "self_request": (who, "You can't ask yourself for money."),
        "blocked": ("", "You can't send money to this account or ask it for money."),
        "idempotency_conflict": ("", "This form was already used for another payment (see your wallet). Check it, then send again if you meant to."),
    }
    if error.code in words:
        field, message = words[error.code]
        return {field: message}
    field = str(error.extra.get("field") or "")
    message = error.message
    if field and message.startswith(f"{field}: "):
        message = message[len(field) + 2 :]
    return {field if field in ("to", "from", "amount", "note") else "": _first_upper(message)}


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _clean_name(text: str | None) -> str:
    """A username as typed, without the ``@`` people put before it."""
    return (text or "").strip().lstrip("@")[:USERNAME_MAX]


def _clean_note(text: str | None) -> str:
    return " ".join((text or "").split())[:NOTE_MAX]


# The one-time notice ------------------------------------------------------------------------


def _notice_signature(request: Request, payload: str) -> str:
    key = get_kernel(request).secret_key.encode()
    return hmac.new(key, b"payments-notice:" + payload.encode(), hashlib.sha256).hexdigest()[:32]


def done(request: Request, text: str, url: str = "/payments/") -> Response:
    """Redirect (303) to ``url``, which then shows ``text`` once as a notice."""
    response = redirect(url)
    payload = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    secure = request.url.scheme == "https" or get_kernel(request).settings.server.https
    value = f"{payload}.{_notice_signature(request, payload)}"
    response.set_cookie(NOTICE_COOKIE, value, max_age=300, httponly=True, samesite="lax", secure=secure, path="/payments")
    return response


def take_notice(request: Request) -> str | None:
    """The notice a form left for this page, if it is genuine (the page must then clear the cookie)."""
    value = request.cookies.get(NOTICE_COOKIE) or ""
    payload, _, signature = value.partition(".")
    if not payload or not hmac.compare_digest(signature, _notice_signature(request, payload)):
        return None
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except ValueError:
        return None


def _with_notice_cleared(request: Request, response: Response) -> Response:
    if NOTICE_COOKIE in request.cookies:
        response.delete_cookie(NOTICE_COOKIE, path="/payments")
    return response


def _name(person: dict[str, Any] | User | None) -> str:
    """"Bob Builder (@bob_b)" for a user object or a user."""
    if person is None:
        return "someone"
    if isinstance(person, User):
        return f"{person.display_name or person.username} (@{person.username})"
    return f"{person.get('display_name') or person['username']} (@{person['username']})"


# Hooks' helpers -----------------------------------------------------------------------------


def profile_actions(request: Request, viewer: User | None, profile: User) -> list[ProfileAction]:
    """Pay and Request on someone else's profile; none on one's own, across a block, or for a visitor."""
    if viewer is None or viewer.id == profile.id:
        return []
    relation = getattr(request.state, "relation", None) or {}
    if relation.get("blocking") or relation.get("blocked_by"):
        return []
    return [
        ProfileAction("Pay", "/payments/send?" + urlencode({"to": profile.username}), order=50),
        ProfileAction("Request", "/payments/request?" + urlencode({"from": profile.username}), order=51),
    ]


def nav_items(user: User | None) -> list[NavItem]:
    """The navigation's "Wallet" item, for signed-in users."""
    if user is None:
        return []
    return [NavItem("Wallet", "/payments/", order=50, requires_login=True)]


# Forms' contexts ------------------------------------------------------------------------------


def _form(values: dict[str, str] | None = None, errors: dict[str, str] | None = None, key: str | None = None) -> dict[str, Any]:
    """What a form template draws: the values typed, the errors by field, and a fresh idempotency key."""
    return {"fields": values or {}, "errors": errors or {}, "key": key or secrets.token_urlsafe(18)}


def _form_key(form: dict[str, str]) -> str | None:
    """The form's idempotency key, if it carries a sensible one."""
    key = (form.get("idempotency_key") or "").strip()
    return key if 0 < len(key) <= 64 else None


async def _person(request: Request, viewer: User, name: str, who: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The user named ``name`` as shown atop the send and request pages, and what is wrong with them as a party."""
    if not name:
        return None, {}
    kernel = get_kernel(request)
    person = await anyio.to_thread.run_sync(kernel.user, name)
    if person is None:
        return None, {who: f"There is no user @{name}."}
    if person.id == viewer.id:
        return None, {who: "You can't send money to yourself." if who == "to" else "You can't ask yourself for money."}
    await kernel.prepare_users([person])
    if await anyio.to_thread.run_sync(kernel.is_blocked, viewer, person):
        return kernel.user_json(person), {"": "You can't send money to this account or ask it for money."}
    return kernel.user_json(person), {}


# The wallet ------------------------------------------------------------------------------------


def _history_item(item: dict[str, Any]) -> dict[str, Any]:
    """A transaction as the history lists it: who, what kind, the signed amount, when."""
    kind, amount, other = item.get("kind") or "", int(item.get("amount") or 0), item.get("counterparty")
    if kind == "transfer":
        label = "Sent" if amount < 0 else "Received"
    elif kind == "request":
        label = "Paid a request" if amount < 0 else "Request paid"
    else:
        label = KIND_LABELS.get(kind, _first_upper(kind.replace("_", " ")))
    title = (other.get("display_name") or other["username"]) if other else KIND_TITLES.get(kind, label)
    created = item.get("created_at") or ""
    note = item.get("note") or ""
    return {
        **item,
        # A system note that only repeats the kind ("Top-up") says nothing.
        "note": "" if note.lower() in (label.lower(), title.lower()) else note,
        "label": label,
        "title": title,
        "signed": signed_money(amount, item.get("currency") or "USD"),
        "direction": "in" if amount > 0 else "out" if amount < 0 else "none",
        "date": created[:16].replace("T", " "),
    }


def _rate(annual_rate: float) -> str:
    """``0.04`` as ``4%``, ``0.0425`` as ``4.25%``."""
    return f"{annual_rate * 100:.2f}".rstrip("0").rstrip(".") + "%"


async def _topup_notice(request: Request, viewer: User) -> str | None:
    """After a top-up's checkout (``?topup=<id>``): whether the money has arrived yet."""
    checkout_id = (request.query_params.get("topup") or "")[:64]
    if not checkout_id:
        return None
    payments = _payments(request)
    try:
        row = await anyio.to_thread.run_sync(payments.billing.checkouts.get, checkout_id, viewer.id)
    except ApiError:
        return None
    if row.status == COMPLETED:
        return f"{money(row.amount, row.currency)} was added to your wallet."
    if row.status == OPEN:
        return f"Your payment of {money(row.amount, row.currency)} is being confirmed. It shows here once it arrives."
    return None


async def _plan_title(request: Request, viewer: User) -> str:
    """The best plan the viewer holds, by its title: "Premium", or "Free"."""
    kernel = get_kernel(request)
    held = await anyio.to_thread.run_sync(kernel.plans_of, viewer)
    plans = kernel.entitlements.catalog.plans
    paid = [name for name in held if name != "free"]
    name = paid[0] if paid else "free"
    plan = plans.get(name)
    return plan.title if plan is not None else _first_upper(name)


def _pending_item(item: dict[str, Any], other: str) -> dict[str, Any]:
    """A pending request as the wallet lists it: ``who`` is the other person (``requester`` or ``payer``)."""
    who = item.get(other) or {"username": "unknown", "display_name": "Someone", "verified": False}
    return {**item, "who": who, "shown": money(item["amount"], item["currency"])}


async def wallet_context(request: Request, viewer: User, **extra: Any) -> dict[str, Any]:
    """Everything the wallet page shows; ``extra`` overrides (a refused form, its errors)."""
    payments = _payments(request)
    cursor = request.query_params.get("cursor") or None
    currency = payments.settings.currency
    page = await payments.history(viewer, cursor, PAGE_SIZE)
    context: dict[str, Any] = {
        "currency": currency,
        "history": [_history_item(item) for item in page.results],
        "next_url": f"/payments/?{urlencode({'cursor': page.next_cursor})}#history" if page.next_cursor else None,
        "paged": cursor is not None,
    }
    if cursor is None:
        wallet = await payments.wallet(viewer)
        savings = await payments.savings.overview(viewer)
        incoming = await payments.requests.page(viewer, INCOMING, PENDING, None, REQUESTS_SHOWN)
        outgoing = await payments.requests.page(viewer, OUTGOING, PENDING, None, REQUESTS_SHOWN)
        context |= {
            "balance": money(wallet["balance"], currency),
            "balance_minor": wallet["balance"],
            "savings": {
                "balance": money(savings["balance"], currency),
                "balance_minor": savings["balance"],
                "rate": _rate(savings["annual_rate"]),
                "earns": savings["annual_rate"] > 0,
                "interest_earned": money(savings["interest_earned"], currency),
                "last_accrued_on": savings["last_accrued_on"],
            },
            "incoming": [_pending_item(item, "requester") for item in incoming.results],
            "outgoing": [_pending_item(item, "payer") for item in outgoing.results],
            "plan_title": await _plan_title(request, viewer),
            "send": _form(),
            "ask": _form(),
            "saving": _form(),
            "request_errors": {},
        }
    context["notice"] = take_notice(request) or (await _topup_notice(request, viewer) if cursor is None else None)
    return context | extra


async def wallet(request: Request) -> Response:
    """``GET /payments/``: the wallet; ``?cursor=`` shows older transactions only."""
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request, "/payments/")
    context = await wallet_context(request, viewer)
    return _with_notice_cleared(request, render(request, "payments/wallet.html", context))


# Sending ---------------------------------------------------------------------------------------


def _prefill(request: Request, who: str) -> dict[str, str]:
    query = request.query_params
    return {who: _clean_name(query.get(who)), "amount": (query.get("amount") or "").strip()[:24], "note": _clean_note(query.get("note"))}


async def _form_page(request: Request, template: str, who: str, values: dict[str, str], form: dict[str, Any], status_code: int = 200) -> Response:
    viewer = current_user(request)
    assert viewer is not None
    payments = _payments(request)
    person, problems = await _person(request, viewer, values.get(who, ""), who)
    if status_code == 200:
        form["errors"] = {**problems, **form["errors"]}
    wallet_now = await payments.wallet(viewer)
    context = {"form": form, "person": person, "balance": money(wallet_now["balance"], payments.settings.currency), "currency": payments.settings.currency}
    return render(request, template, context, status_code=status_code)


async def send_page(request: Request) -> Response:
    """``GET /payments/send?to=&amount=&note=``: the send form, filled in from the link (the profile's Pay)."""
    if current_user(request) is None:
        return login_redirect(request)
    values = _prefill(request, "to")
    return await _form_page(request, "payments/send.html", "to", values, _form(values))


async def send(request: Request) -> Response:
    """``POST /payments/send`` (to, amount, note, idempotency_key): send, then back to the wallet with a notice.

    A refusal shows the form again, filled in, with the error next to its
    field (and the same idempotency key: nothing was recorded under it).
    A retry of a payment already made answers like the first.
    """
    form = await read_form(request)
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request, "/payments/send")
    payments = _payments(request)
    values = {"to": _clean_name(form.get("to")), "amount": (form.get("amount") or "").strip()[:24], "note": _clean_note(form.get("note"))}
    key = _form_key(form)
    try:
        errors = {}
        if not values["to"]:
            errors["to"] = "Enter the username of the person to pay."
        try:
            amount = parse_amount(values["amount"], payments.settings.currency)
        except ApiError as error:
            errors["amount"] = error.message
        if errors:
            raise _FormRefused(errors)
        sent, _ = await payments.transfer(viewer, values["to"], amount, values["note"], key)
    except _FormRefused as refused:
        return await _form_page(request, "payments/send.html", "to", values, _form(values, refused.errors, key), status_code=422)
    except ApiError as error:
        # A key already spent on another payment is no use to this form: the next try gets a new one.
        key = None if error.code == "idempotency_conflict" else key
        return await _form_page(request, "payments/send.html", "to", values, _form(values, field_errors(error, payments, "to", values["to"]), key), error.status)
    to = _name(sent.get("counterparty"))
    return done(request, f"You sent {money(-sent['amount'], payments.settings.currency)} to {to}.", "/payments/?done=sent")


class _FormRefused(Exception):
    """The form's own checks failed: ``errors`` by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("form refused")
        self.errors = errors


# Requests --------------------------------------------------------------------------------------


async def request_page(request: Request) -> Response:
    """``GET /payments/request?from=&amount=&note=``: the form that asks someone for money (the profile's Request)."""
    if current_user(request) is None:
        return login_redirect(request)
    values = _prefill(request, "from")
    return await _form_page(request, "payments/request.html", "from", values, _form(values))


async def make_request(request: Request) -> Response:
    """``POST /payments/request`` (from, amount, note): ask; the payer sees it on their wallet with Accept and Decline."""
    form = await read_form(request)
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request, "/payments/request")
    payments = _payments(request)
    values = {"from": _clean_name(form.get("from")), "amount": (form.get("amount") or "").strip()[:24], "note": _clean_note(form.get("note"))}
    try:
        errors = {}
        if not values["from"]:
            errors["from"] = "Enter the username of the person to ask."
        try:
            amount = parse_amount(values["amount"], payments.settings.currency)
        except ApiError as error:
            errors["amount"] = error.message
        if errors:
            raise _FormRefused(errors)
        asked = await payments.requests.create(viewer, values["from"], amount, values["note"])
    except _FormRefused as refused:
        return await _form_page(request, "payments/request.html", "from", values, _form(values, refused.errors), status_code=422)
    except ApiError as error:
        return await _form_page(request, "payments/request.html", "from", values, _form(values, field_errors(error, payments, "from", values["from"])), error.status)
    return done(request, f"You asked {_name(asked['payer'])} for {money(asked['amount'], asked['currency'])}.", "/payments/?done=requested")


DECISIONS = {"accept": "paid", "decline": "declined", "cancel": "cancelled"}


async def decide(request: Request) -> Response:
    """``POST /payments/requests/{id}/accept|decline|cancel``: pay or refuse a request asked of one, or withdraw one's own.

    A second click after the first went through (a double-submit) is not an
    error: it lands on the same notice. A refusal shows the wallet with the
    message beside that request (insufficient funds leaves it pending).
    """
    await read_form(request)
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request, "/payments/")
    action = request.path_params["action"]
    if action not in DECISIONS:
        raise ApiError(404, "not_found", "There is nothing here.")
    request_id = request.path_params["request_id"]
    payments = _payments(request)
    try:
        decided = await getattr(payments.requests, action)(viewer, request_id)
    except ApiError as error:
        status = error.extra.get("request_status", error.extra.get("status"))
        if error.code == "not_pending" and status == DECISIONS[action]:
            return done(request, f"This request is already {DECISIONS[action]}.", f"/payments/?done={DECISIONS[action]}")
        message = error.message
        if error.code == "insufficient_funds":
            message = "Your wallet holds less than this request. Add money first."
        context = await wallet_context(request, viewer, request_errors={request_id: message})
        if not any(item["id"] == request_id for item in context["incoming"] + context["outgoing"]):
            context["page_error"] = message
        return _with_notice_cleared(request, render(request, "payments/wallet.html", context, status_code=error.status))
    shown = money(decided["amount"], decided["currency"])
    text = {
        "accept": f"You paid {_name(decided['requester'])} {shown}.",
        "decline": f"You declined the request from {_name(decided['requester'])} for {shown}.",
        "cancel": f"You cancelled your request to {_name(decided['payer'])} for {shown}.",
    }[action]
    return done(request, text, f"/payments/?done={DECISIONS[action]}")


# Savings ---------------------------------------------------------------------------------------


async def move_savings(request: Request) -> Response:
    """``POST /payments/savings/deposit|withdraw`` (amount, idempotency_key): between wallet and savings."""
    form = await read_form(request)
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request, "/payments/")
    action = request.path_params["action"]
    if action not in ("deposit", "withdraw"):
        raise ApiError(404, "not_found", "There is nothing here.")
    payments = _payments(request)
    typed = (form.get("amount") or "").strip()[:24]
    key = _form_key(form)
    try:
        amount = parse_amount(typed, payments.settings.currency)
        move = payments.savings.deposit if action == "deposit" else payments.savings.withdraw
        await move(viewer, amount, key)
    except ApiError as error:
        errors = field_errors(error, payments)
        key = None if error.code == "idempotency_conflict" else key
        context = await wallet_context(request, viewer, saving=_form({"amount": typed}, errors, key))
        return _with_notice_cleared(request, render(request, "payments/wallet.html", context, status_code=error.status))
    shown = money(amount, payments.settings.currency)
    text = f"You moved {shown} to savings." if action == "deposit" else f"You moved {shown} from savings to your wallet."
    return done(request, text, f"/payments/?done={action}#savings")


routes = [
    Route("/payments/", wallet, methods=["GET"]),
    Route("/payments/send", send_page, methods=["GET"]),
    Route("/payments/send", send, methods=["POST"]),
    Route("/payments/request", request_page, methods=["GET"]),
    Route("/payments/request", make_request, methods=["POST"]),
    Route("/payments/requests/{request_id:int}/{action}", decide, methods=["POST"]),
    Route("/payments/savings/{action}", move_savings, methods=["POST"]),
]
