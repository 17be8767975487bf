"""``everything sandbox``: a real process serving a seeded world, tried as a newcomer would from its printed logins.

One sandbox serves the whole module (seeding takes seconds); the tests read
it through the public API and meet its bots over real WebRTC.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugins.calls.client import CallClient
from plugins.spaces.client import SpaceClient
from tests.browser_kit import CALL_ARGS, CHROMIUM, launched_chromium, received_media
from tests.conftest import free_port
from tests.sandbox_process import Sandbox, sandbox_env, started, stop

pytestmark = pytest.mark.xdist_group("sandbox")  # one sandbox process for the module, on one worker


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with started(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


def test_the_sandbox_prints_about_twenty_logins_with_one_password(sandbox: Sandbox) -> None:
    assert sandbox.url.startswith("http://127.0.0.1:")
    assert len(sandbox.password) >= 8
    assert 18 <= len(sandbox.logins) <= 25
    rows = sandbox.logins
    assert "premium" in rows["maya_chen"] and "verified" in rows["maya_chen"]
    assert "free" in rows["sam_rivera"] and "verified" not in rows["sam_rivera"]
    assert "operator" in rows["olivia_ops"]
    assert {"ringo_bot", "tess_bot", "radio_bot"} <= set(rows)


def test_the_printed_logins_open_accounts_with_the_plans_and_roles_shown(sandbox: Sandbox) -> None:
    with sandbox.client("maya_chen") as maya, sandbox.client("sam_rivera") as sam, sandbox.client("olivia_ops") as olivia:
        assert "premium" in maya.get("/api/me").json()["plans"]
        assert "premium" not in sam.get("/api/me").json()["plans"]
        assert olivia.get("/api/me").json()["is_admin"] is True
        assert olivia.get("/api/admin/users").status_code == 200
        assert sam.get("/api/admin/users").status_code == 403


def test_the_cast_follow_each_other_and_keep_contacts(sandbox: Sandbox) -> None:
    with sandbox.client("sam_rivera") as sam:
        following = sam.get("/api/users/sam_rivera/following").json()["results"]
        assert len(following) >= 4
        followers = sam.get("/api/users/maya_chen/followers").json()["results"]
        assert len(followers) >= 3
        contacts = sam.get("/api/contacts").json()["results"]
        assert {"ringo_bot", "tess_bot"} <= {entry["user"]["username"] for entry in contacts}
        assert all(entry["nickname"] for entry in contacts)
        for username in sandbox.logins:
            assert sam.get(f"/api/users/{username}").status_code == 200


def test_posts_carry_mentions_hashtags_and_cashtags_over_the_last_days(sandbox: Sandbox) -> None:
    with sandbox.client("maya_chen") as maya:
        posts = maya.get("/api/feed/explore", params={"limit": 50}).json()["results"]
    assert len(posts) >= 40
    html = "".join(post["html"] for post in posts)
    assert 'href="/@' in html and 'href="/feed/hashtags/' in html and 'class="cashtag"' in html
    moments = sorted(post["created_at"] for post in posts)
    assert moments[0][:10] < moments[-1][:10]  # spread over several days, not all stamped now
    assert sum(post["likes"] for post in posts) > len(posts) and sum(post["replies"] for post in posts) > 0


def test_a_cashtag_lists_the_posts_that_mention_it(sandbox: Sandbox) -> None:
    with sandbox.client("sam_rivera") as sam:
        mentioning = sam.get("/api/feed/cashtags/BTC").json()["results"]
    assert mentioning and all("$BTC" in post["text"].upper() for post in mentioning)


def test_watchlists_and_paper_positions_fit_their_owners(sandbox: Sandbox) -> None:
    with sandbox.client("omar_h") as omar:
        watched = [entry["symbol"] for entry in omar.get("/api/trading/watchlist").json()["results"]]
        held = {position["symbol"] for position in omar.get("/api/trading/positions").json()["results"]}
        open_orders = omar.get("/api/trading/orders", params={"status": "open"}).json()["results"]
        account = omar.get("/api/trading/account").json()
    assert 3 <= len(watched) <= 6 and watched[0] == "BTC"
    assert {"BTC", "ETH"} <= held  # crypto trades around the clock, so its market orders filled at once
    assert any(order["type"] == "limit" and order["symbol"] == "BTC" for order in open_orders)
    assert account["buying_power"] <= account["cash"] < 10_000_000


def test_a_live_space_has_a_bot_on_stage_whose_voice_reaches_a_listener(sandbox: Sandbox) -> None:
    with sandbox.client("sam_rivera") as sam:
        live = sam.get("/api/spaces").json()["results"]
    [space] = [space for space in live if space["host"]["username"] == "radio_bot"]

    async def listen() -> float:
        async with SpaceClient(sandbox.url, token=sandbox.token("sam_rivera"), host_addresses=["127.0.0.1"]) as sam:
            await sam.join(space["id"])
            await sam.received.wait_for(lambda media: media.audio_frames >= 100, timeout=20)
            return sam.received.dominant_frequency()

    assert asyncio.run(listen()) == pytest.approx(330, abs=15)


def test_the_host_bot_invites_a_raised_hand_onto_the_stage(sandbox: Sandbox) -> None:
    with sandbox.client("grace_ho") as grace:
        [space] = [space for space in grace.get("/api/spaces").json()["results"] if space["host"]["username"] == "radio_bot"]

    async def raise_hand() -> str | None:
        async with SpaceClient(sandbox.url, token=sandbox.token("grace_ho"), host_addresses=["127.0.0.1"]) as grace:
            await grace.join(space["id"])
            await grace.request({"type": "spaces.raise_hand"})
            await grace.wait_for(lambda client: client.role_of("grace_ho") == "speaker", timeout=15)
            return grace.role_of("grace_ho")

    assert asyncio.run(raise_hand()) == "speaker"


def test_a_space_is_scheduled_for_tomorrow(sandbox: Sandbox) -> None:
    with sandbox.client("maya_chen") as maya:
        upcoming = maya.get("/api/spaces", params={"status": "scheduled"}).json()["results"]
    assert any(space["host"]["username"] == "hana_sato" for space in upcoming)


@pytest.mark.parametrize(("bot", "tone"), [("ringo_bot", 440), ("tess_bot", 660)])
def test_a_bot_answers_a_video_call_with_its_tone_and_a_test_picture(sandbox: Sandbox, bot: str, tone: int) -> None:
    async def call() -> tuple[float, int, tuple[int, int] | None]:
        async with CallClient(sandbox.url, token=sandbox.token("maya_chen"), host_addresses=["127.0.0.1"]) as maya:
            placed = await maya.call(bot, media="video")
            await placed.wait_connected()
            await placed.received.wait_for(lambda media: media.audio_frames >= 100 and media.video_frames >= 10, timeout=20)
            heard = placed.received.dominant_frequency(), placed.received.video_frames, placed.received.video_size
            await placed.hangup()
            return heard

    frequency, frames, size = asyncio.run(call())
    assert frequency == pytest.approx(tone, abs=15)
    assert frames >= 10 and size is not None and size[0] > 0


@pytest.mark.parametrize("username", ["maya_chen", "sam_rivera", "olivia_ops"])
def test_wallets_hold_a_top_up_and_transfers_both_ways(sandbox: Sandbox, username: str) -> None:
    with sandbox.client(username) as person:
        wallet = person.get("/api/payments/wallet").json()
        history = person.get("/api/payments/transactions", params={"limit": 50}).json()["results"]
    assert wallet["balance"] > 0
    assert [entry["kind"] for entry in history].count("topup") == 1
    transfers = [entry["amount"] for entry in history if entry["kind"] == "transfer"]
    assert any(amount < 0 for amount in transfers) and any(amount > 0 for amount in transfers)
    assert sum(entry["amount"] for entry in history) == wallet["balance"]


def test_a_payment_request_waits_for_an_answer(sandbox: Sandbox) -> None:
    with sandbox.client("maya_chen") as maya:
        pending = maya.get("/api/payments/requests", params={"direction": "incoming", "status": "pending"}).json()["results"]
    assert len(pending) == 1 and pending[0]["amount"] > 0


@pytest.mark.parametrize("username", ["maya_chen", "sam_rivera", "olivia_ops"])
def test_the_call_history_has_answered_declined_and_missed_calls(sandbox: Sandbox, username: str) -> None:
    with sandbox.client(username) as person:
        calls = person.get("/api/calls/history", params={"limit": 50}).json()["results"]
    assert len(calls) >= 5
    assert any(call["end_reason"] == "hangup" and call["duration_seconds"] > 0 for call in calls)
    assert any(call["end_reason"] == "rejected" for call in calls)
    assert any(call["missed"] for call in calls)


def test_missed_calls_left_their_notifications(sandbox: Sandbox) -> None:
    with sandbox.client("sam_rivera") as sam:
        kinds = {item["kind"] for item in sam.get("/api/notifications", params={"limit": 50}).json()["results"]}
    assert "calls.missed" in kinds


@pytest.fixture
def chromium() -> Iterator[Any]:
    yield from launched_chromium(CALL_ARGS)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
def test_one_person_alone_calls_a_bot_from_the_browser_and_gets_its_picture(sandbox: Sandbox, chromium: Any) -> None:
    context = chromium.new_context(base_url=sandbox.url)
    context.set_default_timeout(20_000)
    try:
        login = context.request.post("/api/auth/login", data={"username": "omar_h", "password": sandbox.password})
        assert login.status == 200, login.text()
        page = context.new_page()
        page.goto("/@tess_bot")
        page.get_by_role("link", name="Video call", exact=True).click()
        page.wait_for_selector("[data-calls-view][data-call-state=connected]")
        received = received_media(page)
        assert received["audio"] > 0 and received["video"] > 0
        page.get_by_role("button", name="Hang up").click()
        assert page.locator("[data-calls-ended]").inner_text() == "You hung up."
    finally:
        context.close()


def test_stopping_the_sandbox_deletes_its_folder_unless_kept(tmp_path: Path) -> None:
    feed_only = '[plugins]\nenabled = ["feed"]\n'
    with started(tmp_path / "thrown", settings=feed_only) as thrown, \
            started(tmp_path / "kept", "--keep", "--password", "a fixed password", settings=feed_only) as kept:
        assert kept.password == "a fixed password"
        assert thrown.folder.is_dir() and thrown.folder != kept.folder
        assert stop(thrown, signal.SIGTERM) == 0
        assert stop(kept) == 0
    assert not thrown.folder.exists()
    assert (kept.folder / "everything.db").exists()
    shutil.rmtree(kept.folder)  # kept for the test; nobody else will look at it


def test_a_taken_port_is_refused_plainly(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = subprocess.run([sys.executable, "-m", "kernel.cli", "sandbox", "--port", str(port)],
                                cwd=tmp_path, env=sandbox_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "address already in use" in result.stderr.lower()
    assert "Ready." not in result.stdout
