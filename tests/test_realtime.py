"""The realtime channel at /ws: authentication, routing to plugin handlers, delivery to users, limits and errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client
from starlette.applications import Starlette
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed

from kernel import create_app
from tests.browser_kit import signed_up
from tests.conftest import (
    RECORDER,
    REDIS_URL,
    LiveServer,
    UserClient,
    free_port,
    recorder_settings,
    running,
    serve,
    sign_up,
)
from tests.plugin_fixtures import recorder


def hello(ws: WebSocketTestSession) -> dict[str, Any]:
    message = ws.receive_json()
    assert message["type"] == "kernel.hello"
    return message


def realtime_app(tmp_path: Path, **realtime: Any) -> Starlette:
    return create_app(recorder_settings(tmp_path / "data", realtime=realtime), plugins=RECORDER)


@pytest.fixture
def limited_app(tmp_path: Path) -> Iterator[Starlette]:
    """Tight limits: a burst of 5 messages at 1 a second, 3 bad messages a minute."""
    app = realtime_app(tmp_path, burst=5, messages_per_second=1, max_bad_messages=3)
    with running(app):
        yield app


def test_a_signed_in_user_is_greeted_with_who_they_are(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice", display_name="Alice")
    with alice.websocket_connect("/ws") as ws:
        greeting = hello(ws)
    assert greeting["user"]["username"] == "alice"
    assert greeting["unread"] == 0
    assert greeting["max_message_bytes"] == 64 * 1024


def test_an_anonymous_socket_is_told_why_and_closed_with_4401(recorder_app: Starlette) -> None:
    with TestClient(recorder_app).websocket_connect("/ws") as ws:
        assert ws.receive_json()["code"] == "unauthorized"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4401


def test_a_bearer_token_authenticates_the_socket(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    token = alice.post("/api/auth/tokens", json={"name": "bot"}).json()["token"]
    with TestClient(recorder_app).websocket_connect("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
        assert hello(ws)["user"]["username"] == "alice"


def test_a_cookie_socket_opened_from_another_site_is_refused(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    with alice.websocket_connect("/ws", headers={"Origin": "https://evil.example"}) as ws:
        assert ws.receive_json()["code"] == "forbidden_origin"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4403
    with alice.websocket_connect("/ws", headers={"Origin": "http://testserver"}) as ws:
        assert hello(ws)["user"]["username"] == "alice"


def test_a_message_goes_to_its_plugin_s_handler_and_the_reply_names_its_id(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    with alice.websocket_connect("/ws") as ws:
        hello(ws)
        ws.send_json({"type": "recorder.echo", "id": "m1", "text": "hi"})
        assert ws.receive_json() == {"type": "reply", "said": "hi", "ref": "m1"}
        ws.send_json({"type": "kernel.ping", "id": 2})
        assert ws.receive_json() == {"type": "kernel.pong", "ref": 2}


@pytest.mark.parametrize(
    ("frame", "code", "ref"),
    [
        ("not json", "invalid_json", None),
        ("[1, 2]", "invalid_message", None),
        ('{"id": 5}', "invalid_message", 5),
        ('{"type": "nobody.home", "id": 6}', "unknown_type", 6),
        ('{"type": "recorder.nothing", "id": 7}', "unknown_type", 7),
        ('{"type": "recorder.echo", "id": {"nested": true}}', "invalid_message", None),
        ('{"type": "recorder.shout", "id": 8}', "premium_required", 8),
        ('{"type": "recorder.crash", "id": 9}', "internal_error", 9),
    ],
)
def test_every_bad_message_is_answered_with_an_error_and_the_socket_stays_open(
    recorder_app: Starlette, frame: str, code: str, ref: Any
) -> None:
    alice = sign_up(recorder_app, "alice")
    with alice.websocket_connect("/ws") as ws:
        hello(ws)
        ws.send_text(frame)
        error = ws.receive_json()
        assert error["type"] == "error" and error["code"] == code and error["ref"] == ref and error["message"]
        ws.send_json({"type": "recorder.echo", "id": "after", "text": "still here"})
        assert ws.receive_json()["said"] == "still here"


def test_a_premium_refusal_names_feature_plan_and_upgrade_url(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    with alice.websocket_connect("/ws") as ws:
        hello(ws)
        ws.send_json({"type": "recorder.shout", "id": 1, "text": "hey"})
        error = ws.receive_json()
    assert error["feature"] == "recorder.shout" and error["plan"] == "premium"
    assert error["upgrade_url"] == "/premium?feature=recorder.shout"


def test_a_message_over_64_kib_is_refused(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    with alice.websocket_connect("/ws") as ws:
        hello(ws)
        ws.send_json({"type": "recorder.echo", "id": "big", "text": "x" * (64 * 1024)})
        error = ws.receive_json()
        assert error["code"] == "message_too_large"
        ws.send_json({"type": "recorder.echo", "id": "small", "text": "x" * 60_000})
        assert ws.receive_json()["ref"] == "small"


def test_messages_past_the_rate_limit_are_refused(limited_app: Starlette) -> None:
    alice = sign_up(limited_app, "alice")
    with alice.websocket_connect("/ws") as ws:
        hello(ws)
        for number in range(6):
            ws.send_json({"type": "recorder.echo", "id": number, "text": "spam"})
        answers = [ws.receive_json() for _ in range(6)]
    assert [answer["type"] for answer in answers] == ["reply"] * 5 + ["error"]
    assert answers[-1]["code"] == "rate_limited" and answers[-1]["ref"] == 5


def test_send_to_user_reaches_every_open_connection_of_that_user_only(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    bob = sign_up(recorder_app, "bob_b")
    carol = sign_up(recorder_app, "carol")
    with (
        alice.websocket_connect("/ws") as sender,
        bob.websocket_connect("/ws") as phone,
        bob.websocket_connect("/ws") as laptop,
        carol.websocket_connect("/ws") as bystander,
    ):
        for ws in (sender, phone, laptop, bystander):
            hello(ws)
        sender.send_json({"type": "recorder.poke", "id": 1, "to": "bob_b"})
        assert sender.receive_json() == {"type": "reply", "delivered": True, "ref": 1}
        assert phone.receive_json() == {"type": "recorder.poked", "by": "alice"}
        assert laptop.receive_json() == {"type": "recorder.poked", "by": "alice"}
        bystander.send_json({"type": "kernel.ping", "id": "p"})
        assert bystander.receive_json()["type"] == "kernel.pong", "carol got nothing before her own answer"


def test_send_to_connection_reaches_that_one_connection_only(recorder_app: Starlette) -> None:
    bob = sign_up(recorder_app, "bob_b")
    with bob.websocket_connect("/ws") as phone, bob.websocket_connect("/ws") as laptop:
        hello(phone), hello(laptop)
        laptop.send_json({"type": "recorder.whisper", "id": "who", "to": "nobody"})
        laptop_key = laptop.receive_json()["key"]
        phone.send_json({"type": "recorder.whisper", "id": 1, "to": laptop_key})
        phone_key = phone.receive_json()["key"]
        assert laptop.receive_json() == {"type": "recorder.whispered", "from": phone_key}
        phone.send_json({"type": "kernel.ping", "id": "p"})
        assert phone.receive_json()["type"] == "kernel.pong", "the phone got nothing before its own answer"


def test_plugins_hear_of_each_connection_opening_and_closing(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    with alice.websocket_connect("/ws") as ws:
        hello(ws)
        ws.send_json({"type": "recorder.whisper", "id": 1, "to": "nobody"})
        key = ws.receive_json()["key"]
    recorded = recorder.calls(recorder_app.state.kernel)
    deadline = time.monotonic() + 5
    while "realtime_disconnected:alice" not in recorded and time.monotonic() < deadline:
        time.sleep(0.01)
    assert f"realtime_connected:alice:{key}" in recorded
    assert recorded.index(f"realtime_connected:alice:{key}") < recorded.index("realtime_disconnected:alice")


def test_the_server_sends_heartbeats(tmp_path: Path) -> None:
    app = realtime_app(tmp_path, heartbeat_seconds=0.1)
    with running(app):
        alice = sign_up(app, "alice")
        with alice.websocket_connect("/ws") as ws:
            hello(ws)
            assert ws.receive_json() == {"type": "kernel.heartbeat"}


def bearer(base_url: str, username: str) -> str:
    """Sign up on a real server; returns an API token."""
    response = signed_up(base_url, username, username).post("/api/auth/tokens", json={"name": "test"})
    assert response.status_code == 201, response.text
    return response.json()["token"]


@contextmanager
def connect(base_url: str, token: str) -> Iterator[websockets.sync.client.ClientConnection]:
    """A real websocket client on ``/ws`` with a bearer token, past the greeting."""
    url = base_url.replace("http", "ws", 1) + "/ws"
    with websockets.sync.client.connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "kernel.hello"
        yield ws


def api_token(app: Starlette, username: str) -> str:
    client: UserClient = sign_up(app, username)
    return client.post("/api/auth/tokens", json={"name": "test"}).json()["token"]


def test_a_slow_client_is_disconnected_without_holding_up_the_others(tmp_path: Path) -> None:
    app = realtime_app(tmp_path, send_queue=16, messages_per_second=1000, burst=1000)
    kernel = app.state.kernel
    with LiveServer(app) as server:
        slow_token, bob_token = api_token(app, "slowpoke"), api_token(app, "bob_b")
        with connect(server.url, slow_token) as slow, connect(server.url, bob_token) as bob:
            # From here on the slow client reads nothing while 45 MB are sent its way.
            bob.send(json.dumps({"type": "recorder.flood", "id": 1, "to": "slowpoke", "count": 1500, "size": 30_000}))
            assert json.loads(bob.recv(timeout=30)) == {"type": "reply", "sent": 1500, "ref": 1}
            started = time.monotonic()
            bob.send(json.dumps({"type": "recorder.echo", "id": 2, "text": "are you there"}))
            assert json.loads(bob.recv(timeout=5))["said"] == "are you there"
            assert time.monotonic() - started < 1, "the slow client held nobody up"
            deadline = time.monotonic() + 10
            while kernel.realtime.is_online(kernel.user("slowpoke")) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not kernel.realtime.is_online(kernel.user("slowpoke")), "the slow client was dropped"
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    slow.recv(timeout=10)
    # 4408 when the close frame got through; none when the server had to cut the connection.
    assert closed.value.rcvd is None or closed.value.rcvd.code == 4408


def test_a_socket_that_keeps_sending_bad_messages_is_told_and_closed_with_1008(tmp_path: Path) -> None:
    app = realtime_app(tmp_path, max_bad_messages=3)
    with LiveServer(app) as server, connect(server.url, api_token(app, "alice")) as ws:
        for _ in range(4):
            ws.send("garbage")
        codes = [json.loads(ws.recv(timeout=10))["code"] for _ in range(5)]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert codes == ["invalid_json"] * 4 + ["too_many_errors"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


@pytest.mark.skipif(not REDIS_URL, reason="set EVERYTHING_TEST_REDIS_URL to a Redis server (.ci/run does when Redis answers)")
def test_messages_cross_between_two_server_processes_over_redis(tmp_path: Path) -> None:
    assert REDIS_URL is not None
    env = {"EVERYTHING_BUS__URL": REDIS_URL, "EVERYTHING_SECRET_KEY": "shared-by-the-two-processes-of-this-test"}
    with serve(tmp_path, env) as first, serve(tmp_path, env) as second:
        alice_token, bob_token = bearer(first, "alice"), bearer(second, "bob_b")
        with connect(second, bob_token) as bob_on_second, connect(first, alice_token) as alice_on_first:
            # Alice, served by the first process, follows Bob; Bob hears of it on the second.
            as_alice = {"Authorization": f"Bearer {alice_token}"}
            assert httpx.put(f"{first}/api/users/bob_b/follow", headers=as_alice, timeout=30).status_code == 200
            pushed = json.loads(bob_on_second.recv(timeout=10))
            assert pushed["type"] == "kernel.notification" and pushed["notification"]["kind"] == "kernel.follow"
            assert pushed["notification"]["actor"]["username"] == "alice" and pushed["unread"] == 1
            # And back: Bob follows Alice through the second process.
            as_bob = {"Authorization": f"Bearer {bob_token}"}
            assert httpx.put(f"{second}/api/users/alice/follow", headers=as_bob, timeout=30).status_code == 200
            assert json.loads(alice_on_first.recv(timeout=10))["notification"]["actor"]["username"] == "bob_b"


def test_a_plugin_that_failed_at_start_up_handles_no_messages(tmp_path: Path) -> None:
    settings = recorder_settings(tmp_path / "data", plugins={"enabled": ["recorder", "failing_startup"]})
    app = create_app(settings, plugins={**RECORDER, "failing_startup": "tests.plugin_fixtures.failing_startup"})
    with running(app):
        alice = sign_up(app, "alice")
        with alice.websocket_connect("/ws") as ws:
            hello(ws)
            ws.send_json({"type": "failing_startup.hi", "id": 1})
            assert ws.receive_json()["code"] == "unknown_type"


def test_revoking_a_token_closes_the_sockets_it_opened(tmp_path: Path) -> None:
    app = realtime_app(tmp_path, heartbeat_seconds=0.2)
    with LiveServer(app) as server:
        alice = sign_up(app, "alice")
        created = alice.post("/api/auth/tokens", json={"name": "phone"}).json()
        with connect(server.url, created["token"]) as phone:
            assert alice.delete(f"/api/auth/tokens/{created['id']}").status_code == 204
            messages = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    messages.append(json.loads(phone.recv(timeout=10)))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert messages[-1]["code"] == "unauthorized"


REDIS_SERVER = shutil.which("redis-server")


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)")
def test_a_bus_failure_loses_the_push_but_not_the_change(tmp_path: Path) -> None:
    port = free_port()
    redis = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        app = create_app(recorder_settings(tmp_path / "data", bus={"url": f"redis://127.0.0.1:{port}/0"}), plugins=RECORDER)
        with running(app):
            alice, bob = sign_up(app, "alice"), sign_up(app, "bob_b")
            redis.terminate()
            redis.wait(timeout=10)
            assert alice.put("/api/users/bob_b/follow").status_code == 200
            assert bob.get("/api/notifications").json()["unread"] == 1
    finally:
        redis.kill()
        redis.wait(timeout=10)
