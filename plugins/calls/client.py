"""A calls client in Python (aiortc): for scripts, tests, the sandbox's bots and the benchmark.

It speaks the protocol of ``docs/calls-protocol.md`` over the kernel's
realtime channel, and carries real media::

    async with CallClient("http://127.0.0.1:8000", username="alice", password="...",
                          host_addresses=["127.0.0.1"]) as alice:
        call = await alice.call("bobby", media="video")
        await call.wait_connected()
        await call.received.wait_for(lambda media: media.video_frames >= 10, timeout=10)
        print(call.received.dominant_frequency(), call.received.video_size)
        await call.hangup()

The other side either takes calls from :attr:`CallClient.incoming` and
answers them (``await call.answer()``), or is built with
``auto_answer=True``, as bots are. Every call sends a tone (and, for video,
a moving test picture) unless ``media_source`` says otherwise, and records
what it receives in :attr:`Call.received`.

aiortc does not trickle: it gathers every candidate while setting the local
description and puts them in the SDP. It does accept the other side's
trickled candidates (a browser's), which this client adds as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from kernel import RealtimeClient, RealtimeError, ReceivedMedia, ToneTrack, host_addresses, parse_candidate, rtc_configuration
from plugins.calls.media import TestPictureTrack

log = logging.getLogger("plugins.calls.client")

Media = Literal["audio", "video"]
MediaSource = Callable[[str], MediaStreamTrack | None]
IncomingHandler = Callable[["Call"], Awaitable[None] | None]

# Close codes after which connecting again cannot help (docs/realtime.md).
FINAL_CLOSE_CODES = {1008, 4401, 4403}


class CallError(RealtimeError):
    """The server refused a request: ``code`` is the protocol's error code, ``details`` the rest of the error."""


class CallEnded(CallError):
    """The call ended while waiting for something else; ``code`` is the end reason."""


def default_media_source(tone_hz: float, video_size: tuple[int, int], fps: int) -> MediaSource:
    """A tone for audio, a test picture for video: a new track for every call."""

    def source(kind: str) -> MediaStreamTrack | None:
        if kind == "audio":
            return ToneTrack(tone_hz)
        if kind == "video":
            return TestPictureTrack(*video_size, fps=fps)
        return None

    return source


class Call:
    """One call, from this client's side: its signaling state, its peer connection and what it received.

    Made by :meth:`CallClient.call` (outgoing) or on ``calls.incoming``
    (incoming); never directly. Messages about the call are handled in the
    order they arrive, one at a time, so that a candidate is never added
    before the description it belongs to.
    """

    def __init__(
        self, client: CallClient, call_id: str, peer: str, media: Media, direction: str, offer: str | None = None
    ) -> None:
        self.client = client
        self.call_id = call_id
        self.peer = peer  # the other party's username
        self.media: Media = media
        self.direction = direction  # "outgoing" or "incoming"
        self.state = "ringing"
        self.end_reason: str | None = None
        self.ended_by: str | None = None
        self.info: dict[str, Any] = {}  # the server's last call object
        self.pc: RTCPeerConnection | None = None
        self.received = ReceivedMedia()
        self.started_at = time.monotonic()
        self.connected_at: float | None = None
        self.answered = asyncio.Event()
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self._offer = offer
        self._remote_set = False
        self._pending_candidates: list[dict[str, Any] | None] = []
        self._renegotiated: asyncio.Future[str] | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._worker = asyncio.create_task(self._work(), name=f"call {call_id}")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tracks: list[MediaStreamTrack] = []

    def __repr__(self) -> str:
        ended = f" ({self.end_reason})" if self.end_reason else ""
        return f"<Call {self.call_id} {self.direction} {self.media} with @{self.peer}: {self.state}{ended}>"

    @property
    def live(self) -> bool:
        return self.state != "ended"

    # What a user does -------------------------------------------------------------------

    async def answer(self) -> None:
        """Accept an incoming call: answer its offer, sending our media back.

        Raises :class:`CallError` when the server refuses (``already_answered``,
        ``not_ringing``…); the call is then over for this client.
        """
        if self.direction != "incoming" or self._offer is None:
            raise CallError("not_your_turn", "only an incoming call can be answered")
        if self.state != "ringing":
            raise CallError("not_ringing", f"the call is {self.state}")
        pc = self._new_peer_connection()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(self._offer, "offer"))
            self._remote_set = True
            # Each of the offer's m-lines gets our track of its kind, which makes it sendrecv.
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video" and self.media != "video":
                    continue
                self._send(pc, transceiver.kind)
            await self._flush_candidates()
            answer = await pc.createAnswer()
            with host_addresses(self.client.host_addresses):
                await pc.setLocalDescription(answer)
            reply = await self.client.request({"type": "calls.answer", "call_id": self.call_id, "sdp": pc.localDescription.sdp})
        except CallError as error:
            await self._finish(error.code if error.code != "already_answered" else "answered_elsewhere")
            raise
        except Exception as error:
            if not self.live:  # the caller gave up meanwhile, which closed the connection under us
                raise CallEnded(self.end_reason or "ended", f"the call ended ({self.end_reason})") from error
            await self._finish("media_failed")
            raise
        await self._update(reply.get("call"))
        if self.state == "ringing":
            self.state = "answered"
        self.answered.set()

    async def reject(self) -> None:
        """Decline an incoming call while it rings."""
        try:
            await self.client.request({"type": "calls.reject", "call_id": self.call_id})
        finally:
            await self._finish("rejected")

    async def hangup(self, reason: str = "hangup") -> None:
        """End the call (``reason``: ``hangup``, ``ice_failed`` or ``media_failed``); a no-op once it has ended.

        An incoming call that still rings is declined (:meth:`reject`).
        """
        if not self.live:
            return
        if self.direction == "incoming" and self.state == "ringing":
            with contextlib.suppress(CallError, ConnectionClosed, OSError, TimeoutError):
                await self.reject()
            return
        message = {"type": "calls.hangup", "call_id": self.call_id, "reason": reason}
        try:
            await self.client.request(message)
        except CallError as error:
            log.debug("hang-up of %s refused: %s", self.call_id, error)
        except (ConnectionClosed, OSError, TimeoutError):
            pass  # the server ends it as "disconnected" after the grace period
        await self._finish("cancelled" if self.direction == "outgoing" and self.state == "ringing" else reason)

    async def renegotiate(self, media: Media | None = None) -> None:
        """Offer the call's session again (to turn video on: ``media="video"``) and wait for the answer."""
        if self.pc is None or self.state != "answered":
            raise CallError("not_your_turn", "only an answered call can be renegotiated")
        pc = self.pc
        if media == "video" and not any(t.kind == "video" for t in pc.getTransceivers()):
            self._send(pc, "video")
            self.media = "video"
        self._renegotiated = asyncio.get_running_loop().create_future()
        offer = await pc.createOffer()
        with host_addresses(self.client.host_addresses):
            await pc.setLocalDescription(offer)
        await self.client.request(
            {"type": "calls.renegotiate", "call_id": self.call_id, "sdp": pc.localDescription.sdp, "sdp_type": "offer"}
        )
        await self._until(self._renegotiated, self.client.request_timeout)

    # Waiting ----------------------------------------------------------------------------

    async def wait_answered(self, timeout: float = 30) -> None:
        """Until the call is answered; :class:`CallEnded` if it ends first, TimeoutError after ``timeout``."""
        await self._until(self.answered.wait(), timeout)

    async def wait_connected(self, timeout: float = 30) -> None:
        """Until the media connection is up (ICE and DTLS); :class:`CallEnded` if the call ends first."""
        await self._until(self.connected.wait(), timeout)

    async def wait_ended(self, timeout: float = 30) -> str:
        """Until the call ends; its end reason."""
        async with asyncio.timeout(timeout):
            await self.ended.wait()
        assert self.end_reason is not None
        return self.end_reason

    async def _until(self, awaitable: Awaitable[Any], timeout: float) -> Any:
        waiting = asyncio.ensure_future(awaitable)
        ending = asyncio.ensure_future(self.ended.wait())
        try:
            done, _ = await asyncio.wait({waiting, ending}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ending.cancel()
            if not waiting.done():
                waiting.cancel()
        if waiting in done:
            return waiting.result()
        if ending in done:
            raise CallEnded(self.end_reason or "ended", f"the call ended ({self.end_reason})")
        raise TimeoutError(f"call {self.call_id}: still {self.state} after {timeout:g} s")

    # The client's side of the work ------------------------------------------------------------

    async def _place(self) -> None:
        """The caller's half: offer our media, send the invite, learn how the server took it."""
        pc = self._new_peer_connection()
        self._send(pc, "audio")
        if self.media == "video":
            self._send(pc, "video")
        offer = await pc.createOffer()
        with host_addresses(self.client.host_addresses):
            await pc.setLocalDescription(offer)
        message = {
            "type": "calls.invite",
            "call_id": self.call_id,
            "to": self.peer,
            "media": self.media,
            "sdp": pc.localDescription.sdp,
        }
        reply = await self.client.request(message)
        await self._update(reply.get("call"))

    def _new_peer_connection(self) -> RTCPeerConnection:
        # Explicit servers, always: aiortc otherwise asks a public STUN server (see kernel.webrtc.ice).
        pc = RTCPeerConnection(rtc_configuration(self.client.ice_servers))
        self.pc = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            # Every remote track is read, or aiortc queues its frames without end.
            self._spawn(self.received.consume(track))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected" and not self.connected.is_set():
                self.connected_at = time.monotonic()
                self.connected.set()
            elif pc.connectionState == "failed" and self.live and self.pc is pc:
                self._spawn(self.hangup("ice_failed"))

        return pc

    def _send(self, pc: RTCPeerConnection, kind: str) -> None:
        track = self.client.media_source(kind)
        if track is not None:
            self._tracks.append(track)
            pc.addTrack(track)

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _update(self, info: dict[str, Any] | None) -> None:
        """Take the server's call object; an invite ended at once (busy, glare…) ends here too."""
        if not info:
            return
        self.info = info
        if info.get("state") == "answered" and self.state == "ringing":
            self.state = "answered"
        elif info.get("state") == "ended" and self.live:
            await self._finish(info.get("end_reason") or "ended")

    def _deliver(self, message: dict[str, Any]) -> None:
        self._inbox.put_nowait(message)

    async def _work(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                await self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("call %s: handling %s failed", self.call_id, message.get("type"))

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "calls.ended":
            self.ended_by = message.get("by")
            await self._finish(message.get("reason") or "ended")
        elif not self.live:
            return
        elif kind == "calls.answered" and self.pc is not None and self.direction == "outgoing":
            await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
            self._remote_set = True
            self.state = "answered"
            self.answered.set()
            await self._flush_candidates()
        elif kind == "calls.candidate":
            self._pending_candidates.append(message.get("candidate"))
            if self._remote_set:
                await self._flush_candidates()
        elif kind == "calls.renegotiate" and self.pc is not None:
            await self._renegotiation(message)
        elif kind == "calls.incoming":
            self._offer = message.get("sdp", self._offer)  # sent again to a connection opened while it rings

    async def _renegotiation(self, message: dict[str, Any]) -> None:
        assert self.pc is not None
        pc = self.pc
        if message.get("sdp_type") == "answer":
            await pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
            if self._renegotiated is not None and not self._renegotiated.done():
                self._renegotiated.set_result("answer")
            return
        before = {id(t) for t in pc.getTransceivers()}
        await pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
        # A newly offered kind (video turned on) gets our track too.
        for transceiver in pc.getTransceivers():
            if id(transceiver) not in before and transceiver.sender.track is None:
                self._send(pc, transceiver.kind)
                if transceiver.kind == "video":
                    self.media = "video"
        answer = await pc.createAnswer()
        with host_addresses(self.client.host_addresses):
            await pc.setLocalDescription(answer)
        await self.client.request(
            {"type": "calls.renegotiate", "call_id": self.call_id, "sdp": pc.localDescription.sdp, "sdp_type": "answer"}
        )

    async def _flush_candidates(self) -> None:
        pending, self._pending_candidates = self._pending_candidates, []
        if self.pc is None:
            return
        for init in pending:
            try:
                await self.pc.addIceCandidate(parse_candidate(init))
            except ValueError as error:
                # A bad or late candidate costs only itself; the others may still connect.
                log.debug("call %s: candidate %r ignored: %s", self.call_id, init, error)

    async def _finish(self, reason: str) -> None:
        """Over for this client: stop our media, close the connection, forget the call.

        The first reason wins; a later caller waits until the first has closed everything.
        """
        if self.state == "ended":
            await self.ended.wait()
            return
        self.state = "ended"
        self.end_reason = reason
        try:
            if self._renegotiated is not None and not self._renegotiated.done():
                self._renegotiated.cancel()
            for track in self._tracks:
                track.stop()
            if self.pc is not None:
                await self.pc.close()
        finally:
            self.ended.set()  # once the media is down, so that a waiter finds everything closed
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        self.client._forget(self)
        if self._worker is not asyncio.current_task():
            self._worker.cancel()
        else:
            # Cancelling oneself mid-handler would abort the close above; end after this message instead.
            asyncio.get_running_loop().call_soon(self._worker.cancel)


class CallClient(RealtimeClient):
    """One user's connection to a deployment, placing and answering calls.

    Give ``token`` (an API token) or ``username`` and ``password`` (the
    client then logs in, mints a token and revokes it on :meth:`close`).
    ``host_addresses`` limits the addresses our peers offer as ICE host
    candidates (``["127.0.0.1"]`` keeps a test on loopback); by default
    every address but loopback, as aiortc does. ``auto_answer`` answers
    every incoming call at once (bots); otherwise incoming calls go to
    ``on_incoming`` when given, else to the :attr:`incoming` queue (a call
    taken from it may have ended meanwhile: see :attr:`Call.live`).
    ``media_source(kind)`` makes the track sent for each ``"audio"`` and
    ``"video"`` m-line; by default a ``tone_hz`` tone and a ``video_size``
    test picture at ``fps``. When the socket drops, the client connects
    again (``reconnect=True``) and resumes its calls.

    Use it as an async context manager, or call :meth:`connect` and
    :meth:`close`. It holds no global state: any number of clients can share
    one event loop. Signing in, the socket and :meth:`request` are
    :class:`kernel.RealtimeClient`'s.
    """

    client_name = "calls client"
    error_type = CallError

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        host_addresses: Sequence[str] | None = None,
        auto_answer: bool = False,
        on_incoming: IncomingHandler | None = None,
        media_source: MediaSource | None = None,
        tone_hz: float = 440.0,
        video_size: tuple[int, int] = (320, 240),
        fps: int = 15,
        reconnect: bool = True,
        request_timeout: float = 15.0,
    ) -> None:
        super().__init__(base_url, token=token, username=username, password=password, request_timeout=request_timeout)
        self.host_addresses = list(host_addresses) if host_addresses else None
        self.auto_answer = auto_answer
        self.on_incoming = on_incoming
        self.media_source: MediaSource = media_source or default_media_source(tone_hz, video_size, fps)
        self.reconnect_on_drop = reconnect
        self.ice_servers: list[dict[str, Any]] = []
        self.incoming: asyncio.Queue[Call] = asyncio.Queue()
        self.calls: dict[str, Call] = {}  # live calls by id
        self._ice_expires_at = 0.0

    # Connecting ------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Fetch the ICE servers before the socket opens: an incoming call may be answered at once."""
        await self.refresh_ice_servers()

    async def refresh_ice_servers(self) -> list[dict[str, Any]]:
        """Fetch ``GET /api/calls/ice-servers`` (TURN credentials expire after its ``ttl``)."""
        answer = await self.api("GET", "/api/calls/ice-servers")
        self.ice_servers = list(answer.get("iceServers", []))
        self._ice_expires_at = time.monotonic() + float(answer.get("ttl", 3600)) * 0.9
        return self.ice_servers

    async def reconnect(self) -> None:
        """Drop the socket and open a new one, resuming every call bound to this client (``calls.resume``)."""
        await self._drop_socket("the socket was replaced")
        await self._open_socket()
        await self._resume_calls()

    async def _resume_calls(self) -> None:
        for call in list(self.calls.values()):
            # A ringing incoming call is not bound to us yet: the server sends calls.incoming again instead.
            if call.direction == "incoming" and call.state == "ringing":
                continue
            try:
                reply = await self.request({"type": "calls.resume", "call_id": call.call_id})
            except CallError as error:
                await call._finish("disconnected" if error.code in ("unknown_call", "call_ended") else error.code)
            else:
                await call._update(reply.get("call"))

    async def close(self) -> None:
        """Hang up every call in progress, close the socket and revoke a token this client minted.

        Incoming calls that still ring are left ringing: another device of
        the same user may answer them.
        """
        self._closing = True
        for call in list(self.calls.values()):
            if self._ws is not None and not (call.direction == "incoming" and call.state == "ringing"):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(call.hangup(), 5)
            await call._finish(call.end_reason or "hangup")
        await super().close()

    # Talking to the server ---------------------------------------------------------------

    async def can_call(self, username: str) -> dict[str, Any]:
        """``GET /api/calls/can-call/{username}``: may we call them, with what media, and if not, why."""
        return await self.api("GET", f"/api/calls/can-call/{username}")

    async def call_settings(self, **changes: Any) -> dict[str, Any]:
        """Our call settings; with keyword arguments (``enabled``, ``allow``), change them first."""
        if changes:
            current = await self.api("GET", "/api/calls/settings")
            return await self.api("PUT", "/api/calls/settings", {**current, **changes})
        return await self.api("GET", "/api/calls/settings")

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message on the realtime socket, waiting for it if it is being reopened."""
        if self._ws is None:
            async with asyncio.timeout(self.request_timeout):
                await self._connected.wait()
        await super().send(message)

    # Calls --------------------------------------------------------------------------------

    async def call(self, to: str, media: Media = "audio", *, call_id: str | None = None) -> Call:
        """Place a call to ``@to``; returns once the server took the invite.

        The call may already be over (``busy``, ``unavailable``, ``glare``:
        see :attr:`Call.end_reason`). Raises :class:`CallError` when the
        invite is refused (``premium_required``, ``not_allowed``, ``in_call``…).
        """
        if media not in ("audio", "video"):
            raise ValueError("media is 'audio' or 'video'")
        if time.monotonic() > self._ice_expires_at:
            await self.refresh_ice_servers()
        call = Call(self, call_id or str(uuid.uuid4()), to.lstrip("@"), media, "outgoing")
        # Known before the invite leaves: the answer may overtake the invite's reply.
        self.calls[call.call_id] = call
        try:
            await call._place()
        except CallError:
            await call._finish("cancelled")  # refused: the server keeps nothing
            raise
        except BaseException:
            # The invite may have gone out: cancel it rather than leave the callee ringing.
            await asyncio.shield(call.hangup())
            raise
        return call

    def _forget(self, call: Call) -> None:
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]

    def _incoming(self, message: dict[str, Any]) -> None:
        caller = message.get("caller") or {}
        call = Call(
            self, message["call_id"], caller.get("username", ""), message.get("media", "audio"), "incoming", message["sdp"]
        )
        call.info = {"caller": caller, "lifetime_ms": message.get("lifetime_ms")}
        self.calls[call.call_id] = call
        self._background(self._ring(call))

    async def _ring(self, call: Call) -> None:
        # Sent before anything else about the call, but not waited for: answering need not wait a round trip.
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            self._background(
                self._quietly(self._answer_to(await self._send_request({"type": "calls.ringing", "call_id": call.call_id})))
            )
        if self.auto_answer:
            try:
                await call.answer()
            except CallError as error:
                log.info("auto-answer of %s from @%s refused: %s", call.call_id, call.peer, error)
                return
        if self.on_incoming is not None:
            outcome = self.on_incoming(call)
            if inspect.isawaitable(outcome):
                await outcome
        elif not self.auto_answer:
            self.incoming.put_nowait(call)

    @staticmethod
    async def _quietly(awaitable: Awaitable[Any]) -> None:
        """Await a request whose refusal changes nothing (``calls.ringing`` after the caller gave up)."""
        with contextlib.suppress(CallError, ConnectionClosed, OSError, TimeoutError):
            await awaitable

    # Reading the socket ---------------------------------------------------------------------

    def handle(self, message: dict[str, Any]) -> None:
        """A ``calls.*`` message goes to its call, in order; ``calls.incoming`` of a new call rings."""
        kind = message.get("type", "")
        if not kind.startswith("calls.") or "call_id" not in message:
            super().handle(message)  # an error nobody waits for is logged
            return
        call = self.calls.get(message["call_id"])
        if call is not None:
            call._deliver(message)
        elif kind == "calls.incoming":
            self._incoming(message)

    def socket_closed(self, ws: ClientConnection) -> None:
        """Connect again at once (unless ``reconnect=False`` or the close code says it cannot help) and resume the calls.

        A server that stops for a deploy closes with 1012: through a load
        balancer the new socket lands on another process, and the calls
        resume there while their media, peer to peer, never stopped.
        """
        if self.reconnect_on_drop and ws.close_code not in FINAL_CLOSE_CODES:
            self._background(self._reconnect_loop())
        else:
            super().socket_closed(ws)

    async def _reconnect_loop(self) -> None:
        pause = 0.2
        while not self._closing:
            try:
                await self._open_socket()
            except InvalidStatus as error:
                if error.response.status_code in (401, 403):
                    log.warning("calls client @%s: the server refuses us now (%s); not reconnecting", self.username, error)
                    return
                failure: Exception = error
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, RealtimeError) as error:
                failure = error
            else:
                await self._resume_calls()
                return
            log.info("calls client @%s: reconnecting failed (%s); again in %.1f s", self.username, failure, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 10)
