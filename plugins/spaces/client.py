"""A Spaces client in Python (aiortc): for scripts, tests, the sandbox's bot speakers and the benchmark.

It speaks docs/spaces-protocol.md over the kernel's realtime channel and
carries real sound::

    async with SpaceClient("http://127.0.0.1:8000", username="alice", password="...",
                           host_addresses=["127.0.0.1"]) as alice:
        space = await alice.create("Morning show")
        await alice.join(space["id"], speak=True, tone_hz=440.0)
        await alice.request({"type": "spaces.invite", "user": "bobby"})
        await alice.received.wait_for(lambda media: media.audio_frames > 50, timeout=10)

A client joins one Space at a time. ``speak=False`` joins receive-only;
once the server puts the user on the stage, :meth:`join` again with
``speak=True`` replaces the peer with one that sends (the server keeps the
place). What the client hears is in :attr:`received`; the last stage the
server sent is :attr:`space`, every other pushed message goes to
:attr:`events`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from websockets.asyncio.client import ClientConnection, connect

from plugins.calls.ice import host_addresses, rtc_configuration
from plugins.calls.media import ReceivedMedia, ToneTrack


class SpaceError(Exception):
    """The server refused a request; ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class SpaceClient:
    """One user's realtime connection, in at most one Space at a time.

    Give ``token`` (an API token) or ``username`` and ``password`` (the
    client then logs in and mints a token, revoked on :meth:`close`).
    ``host_addresses`` limits the addresses our peer offers as ICE host
    candidates (``["127.0.0.1"]`` keeps a test on loopback).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        host_addresses: Sequence[str] | None = None,
        request_timeout: float = 15.0,
    ) -> None:
        if token is None and (username is None or password is None):
            raise ValueError("give a token, or a username and a password")
        self.base_url = base_url.rstrip("/")
        self.host_addresses = list(host_addresses) if host_addresses else None
        self.request_timeout = request_timeout
        self.user: dict[str, Any] = {}
        self.space: dict[str, Any] | None = None  # the last spaces.state
        self.space_id: int | None = None
        # Every other spaces.* message, oldest first; the last 500, since a bot stays in a Space for hours.
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=500)
        self.received = ReceivedMedia()
        self.pc: RTCPeerConnection | None = None
        self.tone: MediaStreamTrack | None = None
        self._token = token
        self._username, self._password = username, password
        self._minted_token_id: int | None = None
        self._http: httpx.AsyncClient | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._changed = asyncio.Event()

    @property
    def username(self) -> str:
        return str(self.user.get("username", self._username or ""))

    async def __aenter__(self) -> SpaceClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # Connecting -----------------------------------------------------------------------------

    async def connect(self) -> SpaceClient:
        """Log in if need be and open the realtime socket."""
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=30, trust_env=False)
        try:
            if self._token is None:
                login = await self.api("POST", "/api/auth/login", {"username": self._username, "password": self._password})
                minted = await self._http.post(
                    "/api/auth/tokens", json={"name": "spaces client"}, headers={"X-CSRF-Token": login["csrf_token"]}
                )
                token = _json_or_raise(minted)
                self._token, self._minted_token_id = token["token"], token["id"]
                self._http.cookies.clear()  # from here on the token speaks for us
            self._http.headers["Authorization"] = f"Bearer {self._token}"
            url = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"
            self._ws = await connect(url, additional_headers={"Authorization": f"Bearer {self._token}"}, proxy=None)
            hello = json.loads(await asyncio.wait_for(self._ws.recv(), 30))
            if hello.get("type") != "kernel.hello":
                raise SpaceError("unexpected_greeting", f"the server greeted with {hello.get('type')!r}")
            self.user = hello["user"]
            self._reader = asyncio.create_task(self._read(self._ws), name=f"spaces client @{self.username}")
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Close the peer and the socket (the server takes that as leaving) and revoke a minted token."""
        await self._close_peer()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the client closed"))
        self._waiting.clear()
        if self._http is not None:
            if self._minted_token_id is not None:
                with contextlib.suppress(httpx.HTTPError):
                    await self._http.delete(f"/api/auth/tokens/{self._minted_token_id}")
            await self._http.aclose()
            self._http = None

    # Requests ---------------------------------------------------------------------------------

    async def api(self, method: str, path: str, json_body: Any = None) -> Any:
        """A JSON API request as this user; :class:`SpaceError` with the error's code when refused."""
        if self._http is None:
            raise RuntimeError("connect() first")
        return _json_or_raise(await self._http.request(method, path, json=json_body))

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send a realtime message and return the server's answer; :class:`SpaceError` on an ``error``."""
        if self._ws is None:
            raise RuntimeError("connect() first")
        request_id = f"r{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            await self._ws.send(json.dumps({**message, "id": request_id}))
            async with asyncio.timeout(self.request_timeout):
                answer = await future
        finally:
            self._waiting.pop(request_id, None)
        if answer.get("type") == "error":
            raise SpaceError(answer.get("code", "error"), answer.get("message", ""))
        return answer

    async def create(self, title: str, starts_at: str | None = None) -> dict[str, Any]:
        """``POST /api/spaces``: a new Space hosted by this user."""
        body: dict[str, Any] = {"title": title}
        if starts_at is not None:
            body["starts_at"] = starts_at
        return await self.api("POST", "/api/spaces", body)

    async def join(self, space_id: int, *, speak: bool = False, tone_hz: float = 440.0) -> dict[str, Any]:
        """Join (or join again) with a new peer: sending a ``tone_hz`` tone when ``speak``, else receive-only."""
        await self._close_peer()
        self.received = ReceivedMedia()
        pc = self.pc = RTCPeerConnection(rtc_configuration([]))
        if speak:
            self.tone = ToneTrack(tone_hz)
            pc.addTransceiver(self.tone, direction="sendrecv")
        else:
            pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._consumer = asyncio.create_task(self.received.consume(track))

        offer = await pc.createOffer()
        with host_addresses(self.host_addresses):
            await pc.setLocalDescription(offer)
        reply = await self.request({"type": "spaces.join", "space_id": space_id, "sdp": pc.localDescription.sdp})
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        self.space_id = space_id
        return reply

    async def leave(self) -> None:
        """``spaces.leave``, then close the peer."""
        with contextlib.suppress(SpaceError):
            await self.request({"type": "spaces.leave"})
        await self._close_peer()
        self.space_id = None

    async def wait_for(self, condition: Callable[[SpaceClient], bool], timeout: float = 15.0) -> None:
        """Return once ``condition(self)`` holds, checked after every message; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            while not condition(self):
                self._changed.clear()
                await self._changed.wait()

    def role_of(self, username: str) -> str | None:
        """``username``'s role in the last state sent, or None when it does not name them.

        The state names everyone on stage but only the first ``state_listeners`` listeners (raised hands
        first): in a large Space, None may be a listener it left out.
        """
        if self.space is None:
            return None
        for person in [*self.space["stage"], *self.space["listeners"]]:
            if person["user"]["username"] == username:
                return str(person["role"])
        return None

    # Inside ------------------------------------------------------------------------------------

    async def _close_peer(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None
        if self.pc is not None:
            await self.pc.close()
            self.pc = None
        if self.tone is not None:
            self.tone.stop()
            self.tone = None

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            ref = message.get("ref")
            if ref is not None and str(ref) in self._waiting:
                future = self._waiting.pop(str(ref))
                if not future.done():
                    future.set_result(message)
            elif message.get("type") == "spaces.state":
                self.space = message["space"]
            elif str(message.get("type", "")).startswith("spaces."):
                self.events.append(message)
            self._changed.set()


def _json_or_raise(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:
        return body
    error = body.get("error", {}) if isinstance(body, dict) else {}
    raise SpaceError(error.get("code", f"http_{response.status_code}"), error.get("message", response.text[:200]))
