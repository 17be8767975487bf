"""A pytest plugin for feature teams: a fresh deployment with the plugins you choose, users with plans, and clients.

In your plugin's ``conftest.py``::

    pytest_plugins = ["sandbox.testing"]

then, in a test::

    def test_a_poll_is_created(everything):
        world = everything(plugins=["feed"], extra={"polls": "my_polls"})
        alice = world.user("alice", plans=["premium"])
        assert alice.post("/api/polls", json={...}).status_code == 201
        with world.realtime(alice) as ws:
            assert ws.ask({"type": "polls.vote", ...})["type"] == "reply"

    async def test_a_call_rings(everything):
        world = everything(plugins=["calls"], settings={"plugins": {"calls": {"host_addresses": ["127.0.0.1"]}}})
        world.user("alice", plans=["premium"]); world.user("bobby")
        async with world.calls_client("alice") as alice, world.calls_client("bobby", auto_answer=True):
            call = await alice.call("bobby")
            await call.wait_connected()

Each deployment is a real server (:class:`LiveServer`: uvicorn on a free
loopback port, in a thread; it serves an app of your own as well) over its
own temporary folder, the embedded SQLite database and the in-process bus,
stopped when the test ends. Everything goes through the public API:
sign-up, the JSON API (``httpx``), the realtime websocket, and WebRTC for
the calls and Spaces clients.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from websockets.sync.client import ClientConnection, connect

PASSWORD = "correct horse battery"
TIMEOUT = 15.0


class ApiClient(httpx.Client):
    """A client signed in as one user (session cookie and CSRF token), against the deployment's URL."""

    username: str


class Realtime:
    """A realtime socket signed in as one user, past the kernel's hello."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.hello = json.loads(ws.recv(TIMEOUT))
        self._ids = 0

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def receive(self, kind: str | None = None, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next message (of type ``kind``, skipping others); TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(max(deadline - time.monotonic(), 0.001)))
            if kind is None or message.get("type") == kind:
                return message

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` with an id; its reply or error (messages in between are skipped)."""
        self._ids += 1
        request_id = f"kit{self._ids}"
        self.send({**message, "id": request_id})
        deadline = time.monotonic() + TIMEOUT
        while True:
            answer = json.loads(self.ws.recv(max(deadline - time.monotonic(), 0.001)))
            if answer.get("ref") == request_id:
                return answer


class World:
    """One throwaway deployment, served for the length of a test."""

    def __init__(self, app: Starlette, server: LiveServer, stack: ExitStack) -> None:
        self.app = app
        self.kernel = app.state.kernel
        self.url = server.url
        self._server = server
        self._stack = stack
        self.tokens: dict[str, str] = {}

    def user(self, username: str, *, plans: Sequence[str] = (), password: str = PASSWORD, display_name: str | None = None) -> ApiClient:
        """Sign ``username`` up through the API, grant them ``plans``, and return a client signed in as them."""
        client = self._stack.enter_context(ApiClient(base_url=self.url, trust_env=False, timeout=30))
        body: dict[str, Any] = {"username": username, "password": password}
        if display_name is not None:
            body["display_name"] = display_name
        response = client.post("/api/auth/signup", json=body)
        if response.status_code != 201:
            raise AssertionError(f"signing up @{username} failed: {response.text}")
        client.headers["X-CSRF-Token"] = response.headers["X-CSRF-Token"]
        client.username = username
        minted = client.post("/api/auth/tokens", json={"name": "kit"})
        if minted.status_code != 201:
            raise AssertionError(f"minting a token for @{username} failed: {minted.text}")
        self.tokens[username] = minted.json()["token"]
        for plan in plans:
            self.grant(username, plan)
        return client

    def grant(self, username: str, plan: str) -> None:
        """Give ``username`` the plan ``plan``, as an operator does."""
        user = self.kernel.user(username)
        if user is None:
            raise KeyError(username)
        self._server.run(self.kernel.grant(user, plan))

    @contextmanager
    def realtime(self, client: ApiClient) -> Iterator[Realtime]:
        """A realtime socket signed in as ``client``'s user."""
        url = self.url.replace("http://", "ws://", 1) + "/ws"
        with connect(url, additional_headers={"Authorization": f"Bearer {self.tokens[client.username]}"}) as ws:
            yield Realtime(ws)

    def calls_client(self, username: str, **options: Any) -> Any:
        """A :class:`plugins.calls.client.CallClient` for ``username`` (signed up already), on loopback."""
        from plugins.calls.client import CallClient

        options.setdefault("host_addresses", ["127.0.0.1"])
        return CallClient(self.url, token=self.tokens[username], **options)

    def spaces_client(self, username: str, **options: Any) -> Any:
        """A :class:`plugins.spaces.client.SpaceClient` for ``username`` (signed up already), on loopback."""
        from plugins.spaces.client import SpaceClient

        options.setdefault("host_addresses", ["127.0.0.1"])
        return SpaceClient(self.url, token=self.tokens[username], **options)


class LiveServer:
    """An app under uvicorn on a free loopback port, in a thread of its own, lifespan and all.

    ``with LiveServer(app) as server:`` serves ``app`` until the block ends;
    ``server.url`` is its base URL, and ``server.run(coroutine)`` runs a
    coroutine on the server's event loop, where the app's tasks live. The
    loop is the one uvicorn chooses, as for ``everything serve`` (uvloop
    where it is installed).
    """

    def __init__(self, app: Starlette) -> None:
        self.server = _Uvicorn(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def run(self, coroutine: Any) -> Any:
        """Run ``coroutine`` on the server's event loop and return its result (TimeoutError after 15 s)."""
        assert self.server.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.server.loop).result(TIMEOUT)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, keeping hold of the event loop it serves on."""

    loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)


WorldFactory = Callable[..., World]


@pytest.fixture
def everything(tmp_path: Path) -> Iterator[WorldFactory]:
    """A factory of fresh deployments: ``everything(plugins=[...], extra={name: module}, settings={...})``.

    ``plugins`` names the bundled plugins to run (default: all); ``extra``
    adds plugins by name, as modules or import paths, as if installed with
    an entry point (yours), and enables them; ``settings`` merges into the
    deployment's settings (``{"plugins": {"calls": {...}}, "plans": {...}}``).
    """
    from kernel import create_app
    from kernel.plugin.manager import BUNDLED_PLUGINS
    from kernel.settings import Settings, throwaway

    with ExitStack() as stack:
        count = 0

        def make(plugins: Sequence[str] | None = None, extra: dict[str, Any] | None = None, settings: dict[str, Any] | None = None) -> World:
            nonlocal count
            count += 1
            data = {**throwaway(tmp_path / f"deployment-{count}"), **(settings or {})}
            enabled = [*(BUNDLED_PLUGINS if plugins is None else plugins), *(extra or {})]
            data["plugins"] = {**data.get("plugins", {}), "enabled": enabled}
            app = create_app(Settings.model_validate(data), plugins=extra)
            server = stack.enter_context(LiveServer(app))
            return World(app, server, stack)

        yield make
