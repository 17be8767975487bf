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
from collections.abc import Callable, Sequence
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from kernel import RealtimeClient, RealtimeError, ReceivedMedia, ToneTrack, host_addresses, rtc_configuration


class SpaceError(RealtimeError):
    """The server refused a request; ``code`` is the protocol's error code."""


class SpaceClient(RealtimeClient):
    """One user's realtime connection, in at most one Space at a time.

    Give ``token`` (an API token) or ``username`` and ``password`` (the
    client then logs in and mints a token, revoked on :meth:`close`).
    ``host_addresses`` limits the addresses our peer offers as ICE host
    candidates (``["127.0.0.1"]`` keeps a test on loopback). Signing in,
    the socket, :meth:`api` and :meth:`request` are :class:`kernel.RealtimeClient`'s.
    """

    client_name = "spaces client"
    error_type = SpaceError

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
        super().__init__(base_url, token=token, username=username, password=password, request_timeout=request_timeout)
        self.host_addresses = list(host_addresses) if host_addresses else None
        self.space: dict[str, Any] | None = None  # the last spaces.state
        self.space_id: int | None = None
        # Every other spaces.* message, oldest first; the last 500, since a bot stays in a Space for hours.
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=500)
        self.received = ReceivedMedia()
        self.pc: RTCPeerConnection | None = None
        self.tone: MediaStreamTrack | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def close(self) -> None:
        """Close the peer and the socket (the server takes that as leaving) and revoke a minted token."""
        await self._close_peer()
        await super().close()

    # Requests ---------------------------------------------------------------------------------

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

    async def wait_for(self, condition: Callable[[SpaceClient], bool], timeout: float | None = 15.0) -> None:
        """Return once ``condition(self)`` holds, checked after every message; TimeoutError after ``timeout`` (None: wait for ever)."""
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

    def handle(self, message: dict[str, Any]) -> None:
        """Keep the last ``spaces.state`` in :attr:`space` and every other ``spaces.*`` in :attr:`events`; wake :meth:`wait_for`."""
        if message.get("type") == "spaces.state":
            self.space = message["space"]
        elif str(message.get("type", "")).startswith("spaces."):
            self.events.append(message)
        else:
            super().handle(message)
        self._changed.set()
