"""The whole deployment: two `everything serve` processes on PostgreSQL and Redis, behind nginx alternating between them.

Every request and socket of these tests goes to nginx's one address, as a
phone's would; nginx hands each to either host, round-robin, and names the
one that answered (``X-Upstream``), which the tests read only to prove that
both hosts took part. Writes, reads, sockets and calls must come out the
same whichever host each lands on, a host stopped mid-call included.

One deployment serves the module (each test signs up people of its own);
a host that a test stopped is started again before the next test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from sandbox.testing import Realtime
from tests.conftest import PASSWORD
from tests.deployment_kit import (
    HEARTBEAT_SECONDS,
    PRESENCE_SECONDS,
    RECONNECT_GRACE_SECONDS,
    Deployment,
    connected,
    deployment_marks,
    hears_more,
    lose_network,
    next_request_away_from,
    on_two_hosts,
    until_held_elsewhere,
)
from tests.media_samples import PNG
from tests.test_calls_media import ALICE_TONE, BOBBY_TONE, TIMEOUT, assert_tone
from tests.test_pages import csrf_of

pytestmark = deployment_marks()

HTML = {"accept": "text/html"}
# What the issue asks of anything a credential or a switch changes: every host knows within a second.
AT_ONCE_SECONDS = 1.0
# Close codes (docs/realtime.md): a draining host's "come back at once, elsewhere"; a credential that no longer holds.
CLOSE_SERVICE_RESTART, CLOSE_UNAUTHORIZED = 1012, 4401


@dataclass
class Person:
    """Someone signed up through nginx: a browser-like client (session cookie, CSRF token) and an API token."""

    username: str
    http: httpx.Client
    token: str
    token_id: int

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


SignUp = Callable[[str], Person]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with Deployment(tmp_path_factory.mktemp("deployment")) as running:
        yield running


@pytest.fixture(autouse=True)
def every_host_running(deployment: Deployment) -> None:
    """Each test starts with both hosts up (a test may have stopped one); the report shows only its own log lines."""
    deployment.start_all()
    deployment.mark_logs()


@pytest.fixture(scope="module")
def sign_up(deployment: Deployment) -> Iterator[SignUp]:
    with ExitStack() as stack:

        def make(username: str) -> Person:
            http = stack.enter_context(httpx.Client(base_url=deployment.url, trust_env=False, timeout=30))
            signed = http.post("/api/auth/signup", json={"username": username, "password": PASSWORD})
            assert signed.status_code == 201, signed.text
            http.headers["X-CSRF-Token"] = signed.headers["X-CSRF-Token"]
            minted = http.post("/api/auth/tokens", json={"name": "deployment test"})
            assert minted.status_code == 201, minted.text
            return Person(username, http, minted.json()["token"], minted.json()["id"])

        yield make


@pytest.fixture(scope="module")
def operator(deployment: Deployment, sign_up: SignUp) -> Person:
    """An operator, made with the CLI as on a real deployment, once every host knows it."""
    oscar = sign_up("oscar")
    deployment.cli("users", "set-admin", "oscar")
    # The command line tells the running hosts through Redis; their account caches (5 s) are the fallback.
    until_every_host(deployment, lambda: oscar.http.get("/api/me"), lambda answer: answer.json()["is_admin"], seconds=15)
    return oscar


def until_every_host(
    deployment: Deployment, request: Callable[[], httpx.Response], holds: Callable[[httpx.Response], bool], seconds: float = 10
) -> list[httpx.Response]:
    """Repeat ``request`` until every host has answered it with ``holds`` true; the answers that did.

    Each host must hold it on its latest answer: a host that answered
    right once and wrong later has not settled.
    """
    settled: dict[str, httpx.Response] = {}
    deadline = time.monotonic() + seconds
    while True:
        answer = request()
        host = deployment.host_of(answer).name
        if holds(answer):
            settled[host] = answer
        else:
            settled.pop(host, None)
        if len(settled) == len(deployment.hosts):
            return list(settled.values())
        if time.monotonic() > deadline:
            raise AssertionError(f"after {seconds:g} s only hosts {sorted(settled)} hold it; the last answer: {answer.status_code} {answer.text[:300]}")
        time.sleep(0.02)


# Accounts and cookie sessions ------------------------------------------------------------------


def test_sign_ups_and_cookie_writes_through_alternating_hosts_all_succeed(deployment: Deployment) -> None:
    answers = []
    for name in ("carol", "cyrus", "celia"):
        with httpx.Client(base_url=deployment.url, trust_env=False, timeout=30) as browser:
            signed = browser.post("/api/auth/signup", json={"username": name, "password": PASSWORD})
            assert signed.status_code == 201, signed.text
            csrf = {"X-CSRF-Token": signed.headers["X-CSRF-Token"]}
            answers.append(signed)
            for turn in range(3):
                edited = browser.patch("/api/me", json={"bio": f"turn {turn}"}, headers=csrf)
                assert edited.status_code == 200, edited.text
                answers.append(edited)
            seen = until_every_host(deployment, lambda: browser.get("/api/me"), lambda me: me.status_code == 200)
            assert {me.json()["bio"] for me in seen} == {"turn 2"}

    assert deployment.hosts_of(answers) == set(deployment.hosts)


def test_a_session_made_by_one_host_writes_through_the_other(deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.url, trust_env=False, timeout=30) as browser:
        signed = browser.post("/api/auth/signup", json={"username": "dora", "password": PASSWORD})
        assert signed.status_code == 201, signed.text
        next_request_away_from(deployment, browser, deployment.host_of(signed))

        edited = browser.patch("/api/me", json={"display_name": "Dora"}, headers={"X-CSRF-Token": signed.headers["X-CSRF-Token"]})

        assert edited.status_code == 200, edited.text
        assert deployment.host_of(edited) is not deployment.host_of(signed)


def test_a_form_served_by_one_host_posts_through_the_other(deployment: Deployment, sign_up: SignUp) -> None:
    dylan = sign_up("dylan")
    page = dylan.http.get("/settings", headers=HTML)
    next_request_away_from(deployment, dylan.http, deployment.host_of(page))

    posted = dylan.http.post(
        "/settings/profile", data={"display_name": "Dylan Form", "bio": "", "csrf_token": csrf_of(page.text)}, follow_redirects=False
    )

    assert posted.status_code == 303, posted.text
    assert deployment.host_of(posted) is not deployment.host_of(page)
    seen = until_every_host(deployment, lambda: dylan.http.get("/api/me"), lambda me: me.status_code == 200)
    assert {me.json()["display_name"] for me in seen} == {"Dylan Form"}


# Follows and notifications -----------------------------------------------------------------------


def test_a_follow_through_one_host_notifies_the_socket_on_the_other(deployment: Deployment, sign_up: SignUp) -> None:
    erin, felix = sign_up("erin"), sign_up("felix")
    with deployment.realtime(erin.token) as socket:
        held_by = deployment.socket_host(socket)
        next_request_away_from(deployment, felix.http, held_by)
        followed = felix.http.put("/api/users/erin/follow")
        assert followed.status_code == 200, followed.text
        assert deployment.host_of(followed) is not held_by

        pushed = socket.receive("kernel.notification")

    assert pushed["notification"]["text"] == "@felix followed you"
    assert pushed["notification"]["actor"]["username"] == "felix"
    listed = until_every_host(deployment, lambda: erin.http.get("/api/notifications"), lambda answer: answer.json()["unread"] == 1)
    assert {answer.json()["results"][0]["kind"] for answer in listed} == {"kernel.follow"}


# Feed media -------------------------------------------------------------------------------------


def test_an_image_uploaded_through_one_host_is_served_by_every_host(deployment: Deployment, sign_up: SignUp) -> None:
    gina, hugo = sign_up("gina"), sign_up("hugo")
    uploaded = gina.http.post("/api/feed/media", files={"file": ("dot.png", PNG, "image/png")})
    assert uploaded.status_code == 201, uploaded.text
    posted = gina.http.post("/api/feed/posts", json={"text": "a dot", "media": [uploaded.json()["id"]]})
    assert posted.status_code == 201, posted.text

    fetched = [hugo.http.get(uploaded.json()["url"]) for _ in range(4)]

    assert [(answer.status_code, answer.content) for answer in fetched] == [(200, PNG)] * 4
    assert deployment.hosts_of(fetched) == set(deployment.hosts)


# Trading and payments ---------------------------------------------------------------------------


def test_a_paper_order_placed_through_one_host_is_seen_through_both(deployment: Deployment, sign_up: SignUp) -> None:
    iris = sign_up("iris")
    placed = iris.http.post("/api/trading/orders", json={"symbol": "BTC", "side": "buy", "qty": "0.001", "type": "market", "time_in_force": "gtc"})
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "filled"

    listed = until_every_host(deployment, lambda: iris.http.get("/api/trading/orders"), lambda answer: answer.status_code == 200, seconds=5)

    assert {tuple(order["id"] for order in answer.json()["results"]) for answer in listed} == {(placed.json()["id"],)}
    positions = until_every_host(deployment, lambda: iris.http.get("/api/trading/positions"), lambda answer: answer.status_code == 200, seconds=5)
    assert {tuple((p["symbol"], p["qty"]) for p in answer.json()["results"]) for answer in positions} == {(("BTC", "0.001"),)}


def top_up(person: Person, amount: int) -> None:
    """Money into ``person``'s wallet through the sandbox's card page, as a user tops up."""
    opened = person.http.post("/api/payments/topups", json={"amount": amount})
    assert opened.status_code == 201, opened.text
    checkout = opened.json()["checkout_url"].rsplit("/", 1)[1]
    paid = person.http.post(
        f"/api/payments/sandbox/checkouts/{checkout}/pay", json={"card_number": "4242 4242 4242 4242", "expiry": "12/40", "cvc": "123"}
    )
    assert paid.status_code == 200, paid.text


def test_a_transfer_reaches_the_payee_on_the_other_host_and_both_see_it(deployment: Deployment, sign_up: SignUp) -> None:
    jade, kofi = sign_up("jade"), sign_up("kofi")
    top_up(jade, 5000)
    with deployment.realtime(kofi.token) as socket:
        held_by = deployment.socket_host(socket)
        next_request_away_from(deployment, jade.http, held_by)
        sent = jade.http.post("/api/payments/transfers", json={"to": "kofi", "amount": 1250, "note": "pizza", "idempotency_key": "pizza-1"})
        assert sent.status_code == 201, sent.text
        assert deployment.host_of(sent) is not held_by

        received = socket.receive("payments.received")

    assert (received["amount"], received["note"], received["from"]["username"]) == (1250, "pizza", "jade")
    payer = until_every_host(deployment, lambda: jade.http.get("/api/payments/wallet"), lambda answer: answer.status_code == 200)
    payee = until_every_host(deployment, lambda: kofi.http.get("/api/payments/wallet"), lambda answer: answer.status_code == 200)
    assert {answer.json()["balance"] for answer in payer} == {5000 - 1250}
    assert {answer.json()["balance"] for answer in payee} == {1250}


# Operators: switches and grants -------------------------------------------------------------------


def test_a_plugin_switched_off_through_one_host_is_refused_by_both_and_comes_back(
    deployment: Deployment, sign_up: SignUp, operator: Person
) -> None:
    lena = sign_up("lena")
    until_every_host(deployment, lambda: lena.http.get("/api/trading/account"), lambda answer: answer.status_code == 200)

    switched = operator.http.post("/api/admin/plugins/trading/disable")
    assert switched.status_code == 200 and switched.json()["state"] == "off", switched.text
    try:
        refused = until_every_host(
            deployment, lambda: lena.http.get("/api/trading/account"), lambda answer: answer.status_code == 404, seconds=AT_ONCE_SECONDS
        )
        assert {answer.json()["error"]["code"] for answer in refused} == {"not_found"}
    finally:
        back = operator.http.post("/api/admin/plugins/trading/enable")
    assert back.status_code == 200 and back.json()["state"] == "enabled", back.text
    until_every_host(deployment, lambda: lena.http.get("/api/trading/account"), lambda answer: answer.status_code == 200, seconds=AT_ONCE_SECONDS)


def test_a_premium_grant_through_one_host_holds_on_both(deployment: Deployment, sign_up: SignUp, operator: Person) -> None:
    milo = sign_up("milo")
    until_every_host(deployment, lambda: milo.http.get("/api/entitlements"), lambda answer: answer.json()["plans"] == ["free"])

    granted = operator.http.post("/api/admin/users/milo/grants", json={"plan": "premium"})
    assert granted.status_code == 201, granted.text

    until_every_host(
        deployment, lambda: milo.http.get("/api/entitlements"), lambda answer: "premium" in answer.json()["plans"], seconds=AT_ONCE_SECONDS
    )


# Revocation -------------------------------------------------------------------------------------


def test_a_revoked_token_is_refused_by_every_host_and_its_socket_closes(deployment: Deployment, sign_up: SignUp) -> None:
    nora = sign_up("nora")
    # Both hosts have taken the token, and may hold it in a cache.
    until_every_host(deployment, lambda: nora.http.get("/api/me", headers=nora.bearer), lambda answer: answer.status_code == 200)
    with deployment.realtime(nora.token) as socket:
        held_by = deployment.socket_host(socket)
        # Right after a heartbeat, whose re-check of credentials is then a whole beat away: a close within a
        # second comes from the revocation itself.
        socket.receive("kernel.heartbeat")
        next_request_away_from(deployment, nora.http, held_by)
        revoked = nora.http.delete(f"/api/auth/tokens/{nora.token_id}")
        deadline = time.monotonic() + AT_ONCE_SECONDS
        assert revoked.status_code == 204, revoked.text
        assert deployment.host_of(revoked) is not held_by

        refused = [httpx.get(f"{deployment.url}/api/me", headers=nora.bearer, timeout=10) for _ in deployment.hosts]

        assert [answer.status_code for answer in refused] == [401] * len(deployment.hosts)
        assert deployment.hosts_of(refused) == set(deployment.hosts)
        assert closes_by(socket, deadline) == CLOSE_UNAUTHORIZED


def closes_by(socket: Realtime, deadline: float) -> int | None:
    """Read ``socket`` until the server closes it, which must happen by ``deadline`` (monotonic); its close code."""
    try:
        while True:
            socket.receive(timeout=max(deadline - time.monotonic(), 0.001))
    except ConnectionClosed:
        return socket.ws.close_code
    except TimeoutError:
        raise AssertionError("the socket is still open") from None


# Calls ------------------------------------------------------------------------------------------
# Each side's reconnect deadline lives in the call row, so that a dropped socket, a host stopped for a
# deploy (SIGTERM) or a host that dies (SIGKILL) ends a call only when its party has not come back
# within the grace, whichever host sweeps. The media is peer to peer: it never notices.


def ready_to_call(deployment: Deployment, sign_up: SignUp, operator: Person, caller: str, callee: str) -> tuple[str, str]:
    """``caller`` holds premium and ``callee`` follows them, which lets them through his default call settings; their API tokens."""
    first, second = sign_up(caller), sign_up(callee)
    assert operator.http.post(f"/api/admin/users/{caller}/grants", json={"plan": "premium"}).status_code == 201
    assert second.http.put(f"/api/users/{caller}/follow").status_code == 200
    until_every_host(
        deployment,
        lambda: first.http.get(f"/api/calls/can-call/{callee}"),
        lambda answer: answer.status_code == 200 and answer.json()["allowed"],
    )
    return first.token, second.token


async def test_a_call_carries_media_between_users_on_different_hosts(deployment: Deployment, sign_up: SignUp, operator: Person) -> None:
    async with on_two_hosts(deployment, *ready_to_call(deployment, sign_up, operator, "olga", "petr")) as (olga, petr):
        outgoing, incoming = await connected(olga, petr)
        assert_tone(outgoing.received, BOBBY_TONE)
        assert_tone(incoming.received, ALICE_TONE)

        await outgoing.hangup()

        assert await incoming.wait_ended(TIMEOUT) == "hangup"
        assert incoming.ended_by == "olga"


async def test_a_callee_who_drops_inside_the_grace_resumes_and_the_call_goes_on(
    deployment: Deployment, sign_up: SignUp, operator: Person
) -> None:
    async with on_two_hosts(deployment, *ready_to_call(deployment, sign_up, operator, "quinn", "rosa")) as (quinn, rosa):
        outgoing, incoming = await connected(quinn, rosa)

        await lose_network(rosa)
        # The media is peer-to-peer: while her socket is gone the caller still hears her, for several sweeps of either host.
        await hears_more(outgoing, seconds=3)
        assert outgoing.live and incoming.live
        rosa.reconnect_on_drop = True
        await rosa.reconnect()  # calls.resume

        assert incoming.live and incoming.state == "answered"
        await hears_more(incoming, seconds=1)
        await hears_more(outgoing, seconds=1)
        await outgoing.hangup()
        assert await incoming.wait_ended(TIMEOUT) == "hangup"


async def test_a_party_whose_host_stops_moves_to_the_other_host_and_the_call_goes_on(
    deployment: Deployment, sign_up: SignUp, operator: Person
) -> None:
    async with on_two_hosts(deployment, *ready_to_call(deployment, sign_up, operator, "sven", "tara")) as (sven, tara):
        outgoing, incoming = await connected(sven, tara)
        stopping, socket = deployment.socket_host(tara), tara._ws
        assert socket is not None

        deployment.terminate(stopping)

        await until_held_elsewhere(deployment, tara, stopping)
        assert socket.close_code == CLOSE_SERVICE_RESTART, socket.close_reason
        await asyncio.to_thread(deployment.wait_exited, stopping)  # the media below flows with that host gone
        await hears_more(incoming, seconds=1)
        await hears_more(outgoing, seconds=1)
        assert outgoing.state == incoming.state == "answered"
        # The hang-up reaches the caller's socket from the callee's new one: the call was resumed there.
        await incoming.hangup()
        assert await outgoing.wait_ended(TIMEOUT) == "hangup"
        assert outgoing.ended_by == "tara"


async def test_a_call_whose_party_is_lost_with_a_killed_host_ends_after_the_grace(
    deployment: Deployment, sign_up: SignUp, operator: Person
) -> None:
    async with on_two_hosts(deployment, *ready_to_call(deployment, sign_up, operator, "umar", "vito")) as (umar, vito):
        outgoing, _incoming = await connected(umar, vito)
        vito.reconnect_on_drop = False  # gone for good: the callee's device went down with the host
        lost = deployment.socket_host(vito)

        await asyncio.to_thread(deployment.kill, lost)

        # Nobody is left to say so: once the callee's presence lapses and a second sweep a heartbeat later
        # confirms it, the surviving host's sweep gives him the grace, then ends the call.
        within = TIMEOUT + PRESENCE_SECONDS + HEARTBEAT_SECONDS + RECONNECT_GRACE_SECONDS
        assert await outgoing.wait_ended(within) == "disconnected"
        assert outgoing.ended_by == "vito"
