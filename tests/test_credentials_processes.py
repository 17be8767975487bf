"""Credentials at once everywhere: what one process (or the command line) changes, the other process knows within a second.

Two `everything serve` processes on PostgreSQL and Redis (the deployment
kit's hosts, addressed one by one: A makes the change, B must follow). B
has used each credential and account first, so that it holds them in its
caches; its heartbeat is long, so that a socket that closes within the
second was closed by the bus's message, not by the heartbeat's re-check.
The one-second bound is a deadline for waiting, not a benchmark.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from kernel.realtime.client import websocket_url
from tests.conftest import PASSWORD
from tests.deployment_kit import Deployment, Host, deployment_marks

pytestmark = deployment_marks()

AT_ONCE_SECONDS = 1.0
SESSION_COOKIE = "everything_session"


class SlowHeartbeatDeployment(Deployment):
    """The kit's deployment with a heartbeat far longer than the one second the tests allow."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "EVERYTHING_REALTIME__HEARTBEAT_SECONDS": "60"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with SlowHeartbeatDeployment(tmp_path_factory.mktemp("credentials")) as running:
        yield running


@pytest.fixture(autouse=True)
def marked_logs(deployment: Deployment) -> None:
    deployment.mark_logs()


@pytest.fixture
def a(deployment: Deployment) -> Host:
    return deployment.hosts[0]


@pytest.fixture
def b(deployment: Deployment) -> Host:
    return deployment.hosts[1]


@dataclass
class Person:
    """A user signed in on both processes with one browser session, and holding an API token."""

    username: str
    on_a: httpx.AsyncClient
    on_b: httpx.AsyncClient
    token: str
    token_id: int

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def session(self) -> str:
        secret = self.on_a.cookies.get(SESSION_COOKIE)
        assert secret is not None
        return secret


@asynccontextmanager
async def signed_up(a: Host, b: Host, username: str) -> AsyncIterator[Person]:
    """Sign ``username`` up on A; the same browser session talks to B too (one cookie, as behind a balancer)."""
    async with httpx.AsyncClient(base_url=a.url, trust_env=False, timeout=30) as on_a:
        signed = await on_a.post("/api/auth/signup", json={"username": username, "password": PASSWORD})
        assert signed.status_code == 201, signed.text
        on_a.headers["X-CSRF-Token"] = signed.headers["X-CSRF-Token"]
        minted = await on_a.post("/api/auth/tokens", json={"name": "credentials test"})
        assert minted.status_code == 201, minted.text
        async with httpx.AsyncClient(base_url=b.url, trust_env=False, timeout=30, cookies=on_a.cookies, headers=on_a.headers) as on_b:
            yield Person(username, on_a, on_b, minted.json()["token"], minted.json()["id"])


@asynccontextmanager
async def logged_in(host: Host, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser session of ``username``, made on ``host``."""
    async with httpx.AsyncClient(base_url=host.url, trust_env=False, timeout=30) as client:
        answer = await client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        yield client


async def socket_on(host: Host, headers: dict[str, str]) -> ClientConnection:
    """A realtime socket on ``host`` authenticated by ``headers`` (a bearer token or a session cookie), past its hello."""
    ws = await connect(websocket_url(host.url), additional_headers=headers, proxy=None)
    hello = json.loads(await ws.recv())
    assert hello["type"] == "kernel.hello", hello
    return ws


async def closed_by_server(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Read ``ws`` until the server closes it, waiting at most ``seconds``; the messages it sent last."""
    messages: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                messages.append(json.loads(await ws.recv()))
    except ConnectionClosed:
        return messages
    except TimeoutError:
        raise AssertionError(f"the socket was still open {seconds:g} s after the change") from None


def assert_ended_unauthorized(ws: ClientConnection, messages: list[dict[str, Any]]) -> None:
    assert [message["code"] for message in messages if message["type"] == "error"] == ["unauthorized"], messages
    assert ws.close_code == 4401, (ws.close_code, ws.close_reason)


async def until(ask: Callable[[], Awaitable[httpx.Response]], holds: Callable[[httpx.Response], bool], since: float) -> httpx.Response:
    """Ask until the answer ``holds``, up to :data:`AT_ONCE_SECONDS` after ``since`` (a ``time.monotonic()``); the answer."""
    while True:
        answer = await ask()
        if holds(answer):
            return answer
        if time.monotonic() > since + AT_ONCE_SECONDS:
            raise AssertionError(f"not within {AT_ONCE_SECONDS:g} s; the last answer: {answer.status_code} {answer.text[:300]}")
        await asyncio.sleep(0.05)


# Revocation -----------------------------------------------------------------------------------------


async def test_a_token_revoked_on_one_process_is_refused_and_its_socket_closed_on_the_other_within_a_second(a: Host, b: Host) -> None:
    async with signed_up(a, b, "tara") as tara:
        assert (await tara.on_b.get("/api/me", headers=tara.bearer)).status_code == 200
        ws = await socket_on(b, tara.bearer)

        revoked = await tara.on_a.delete(f"/api/auth/tokens/{tara.token_id}")
        assert revoked.status_code == 204, revoked.text
        since = time.monotonic()

        assert_ended_unauthorized(ws, await closed_by_server(ws, AT_ONCE_SECONDS))
        await until(lambda: tara.on_b.get("/api/me", headers=tara.bearer), lambda answer: answer.status_code == 401, since)


async def test_logging_out_on_one_process_ends_the_session_and_its_socket_on_the_other_within_a_second(a: Host, b: Host) -> None:
    async with signed_up(a, b, "lou_out") as lou:
        assert (await lou.on_b.get("/api/me")).json()["username"] == "lou_out"
        session = lou.session
        ws = await socket_on(b, {"Cookie": f"{SESSION_COOKIE}={session}"})

        assert (await lou.on_a.post("/api/auth/logout")).status_code == 204
        since = time.monotonic()

        assert_ended_unauthorized(ws, await closed_by_server(ws, AT_ONCE_SECONDS))
        on_b = httpx.AsyncClient(base_url=b.url, trust_env=False, timeout=30, cookies={SESSION_COOKIE: session})
        async with on_b:
            await until(lambda: on_b.get("/api/me"), lambda answer: answer.status_code == 401, since)


async def test_a_session_ended_from_the_sessions_list_on_one_process_closes_its_socket_on_the_other(a: Host, b: Host) -> None:
    async with signed_up(a, b, "sid_end") as sid:
        async with logged_in(b, "sid_end") as phone:
            ws = await socket_on(b, {"Cookie": f"{SESSION_COOKIE}={phone.cookies.get(SESSION_COOKIE)}"})
            listed = (await sid.on_a.get("/api/auth/sessions")).json()["results"]
            (other,) = [session for session in listed if not session["current"]]

            assert (await sid.on_a.delete(f"/api/auth/sessions/{other['id']}")).status_code == 204
            since = time.monotonic()

            assert_ended_unauthorized(ws, await closed_by_server(ws, AT_ONCE_SECONDS))
            await until(lambda: phone.get("/api/me"), lambda answer: answer.status_code == 401, since)


async def test_a_password_change_on_one_process_ends_the_users_other_sessions_everywhere_and_keeps_its_own(a: Host, b: Host) -> None:
    async with signed_up(a, b, "pam_pw") as pam:
        async with logged_in(b, "pam_pw") as laptop:
            assert (await laptop.get("/api/me")).status_code == 200
            ws = await socket_on(b, {"Cookie": f"{SESSION_COOKIE}={laptop.cookies.get(SESSION_COOKIE)}"})

            changed = await pam.on_a.put("/api/me/password", json={"current_password": PASSWORD, "new_password": "a brand new secret"})
            assert changed.status_code == 204, changed.text
            since = time.monotonic()

            assert_ended_unauthorized(ws, await closed_by_server(ws, AT_ONCE_SECONDS))
            await until(lambda: laptop.get("/api/me"), lambda answer: answer.status_code == 401, since)
        assert (await pam.on_b.get("/api/me")).status_code == 200, "the session that changed the password stays signed in"
        assert (await pam.on_b.get("/api/me", headers=pam.bearer)).status_code == 200, "API tokens outlive a password change"


# Account changes -------------------------------------------------------------------------------------


async def test_a_display_name_changed_on_one_process_is_seen_on_the_other_at_once(a: Host, b: Host) -> None:
    async with signed_up(a, b, "dina") as dina:
        assert (await dina.on_b.get("/api/me")).json()["display_name"] == "dina"

        changed = await dina.on_a.patch("/api/me", json={"display_name": "Dina Renamed"})
        assert changed.status_code == 200, changed.text
        since = time.monotonic()

        await until(lambda: dina.on_b.get("/api/me"), lambda answer: answer.json()["display_name"] == "Dina Renamed", since)


async def test_operator_rights_given_and_taken_on_the_command_line_reach_a_running_server_at_once(deployment: Deployment, a: Host, b: Host) -> None:
    async with signed_up(a, b, "opal") as opal:
        assert (await opal.on_b.get("/api/admin/users")).status_code == 403

        await asyncio.to_thread(deployment.cli, "users", "set-admin", "opal")
        since = time.monotonic()
        await until(lambda: opal.on_b.get("/api/admin/users"), lambda answer: answer.status_code == 200, since)

        await asyncio.to_thread(deployment.cli, "users", "set-admin", "opal", "--remove")
        since = time.monotonic()
        await until(lambda: opal.on_b.get("/api/admin/users"), lambda answer: answer.status_code == 403, since)


async def test_a_plan_granted_and_revoked_on_the_command_line_reaches_a_running_server_at_once(deployment: Deployment, a: Host, b: Host) -> None:
    async with signed_up(a, b, "gus_plan") as gus:
        assert (await gus.on_b.get("/api/entitlements")).json()["plans"] == ["free"]

        await asyncio.to_thread(deployment.cli, "grant", "gus_plan", "premium")
        since = time.monotonic()
        await until(lambda: gus.on_b.get("/api/entitlements"), lambda answer: "premium" in answer.json()["plans"], since)

        await asyncio.to_thread(deployment.cli, "revoke", "gus_plan", "premium")
        since = time.monotonic()
        await until(lambda: gus.on_b.get("/api/entitlements"), lambda answer: answer.json()["plans"] == ["free"], since)


async def test_a_plugin_switched_on_the_command_line_is_followed_by_a_running_server_at_once(deployment: Deployment, a: Host, b: Host) -> None:
    async with signed_up(a, b, "sw_user") as user:
        assert (await user.on_b.get("/api/trading/account")).status_code == 200

        await asyncio.to_thread(deployment.cli, "plugins", "disable", "trading")
        try:
            since = time.monotonic()
            await until(lambda: user.on_b.get("/api/trading/account"), lambda answer: answer.status_code == 404, since)
        finally:
            await asyncio.to_thread(deployment.cli, "plugins", "enable", "trading")
        since = time.monotonic()
        await until(lambda: user.on_b.get("/api/trading/account"), lambda answer: answer.status_code == 200, since)
