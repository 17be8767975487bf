"""The echo test: a peer in the server process that sends back whatever it receives.

Calling the reserved account ``echo`` lets a user check their microphone
and camera. The switchboard hands each echo call's offer to
:class:`EchoPeers`, which answers at once with a peer that returns every
incoming track — sound and picture — on the same m-line. aiortc decodes
and re-encodes each frame on the way back (about 1–2 % of a core per audio
call), so an echo call is cheap but not free: the switchboard ends it after
``echo_max_seconds``.

The echo's peers offer only ``settings.host_addresses`` as ICE host
candidates (every address but loopback when empty) and use no STUN server:
a caller reaches the server directly, or through the TURN server its own
client was given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

from kernel import host_addresses, parse_candidate, rtc_configuration
from plugins.calls.settings import CallsSettings

log = logging.getLogger("plugins.calls.echo")

EndedCallback = Callable[[str, str], Awaitable[None]]


@dataclass
class _EchoPeer:
    pc: RTCPeerConnection
    relay: MediaRelay = field(default_factory=MediaRelay)
    remote_set: bool = False
    pending: list[dict[str, Any] | None] = field(default_factory=list)
    closing: bool = False


class EchoPeers:
    """Every live echo call of one process, by call id.

    ``on_ended(call_id, reason)`` is awaited once when a peer ends without
    :meth:`close` having been called: ``"ice_failed"`` when its connection
    failed (the caller went away without hanging up: ICE consent lapses
    within about 30 s) or ``"hangup"`` when the caller closed its side of the
    connection. The callback
    should end the call (the peer is already being closed); it is never
    awaited for a peer closed through :meth:`close` or :meth:`close_all`.
    """

    def __init__(self, settings: CallsSettings, on_ended: EndedCallback | None = None) -> None:
        self.settings = settings
        self.on_ended = on_ended
        self._peers: dict[str, _EchoPeer] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._peers

    def __len__(self) -> int:
        return len(self._peers)

    async def answer(self, call_id: str, offer_sdp: str) -> str:
        """Answer ``offer_sdp`` with a peer that echoes each received track back; the answer SDP.

        Raises ValueError when the offer cannot be answered (not a valid
        session description, or nothing aiortc can receive); no peer is kept then.
        """
        if call_id in self._peers:
            raise ValueError(f"echo call {call_id} exists already")
        # No STUN: our only candidates are the server's own addresses.
        pc = RTCPeerConnection(rtc_configuration([]))
        peer = _EchoPeer(pc)
        self._peers[call_id] = peer

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "failed":
                self._ended(call_id, peer, "ice_failed")
            elif pc.connectionState == "closed":
                # aiortc closes a peer by itself when the other side closed DTLS: a hang-up without the message.
                self._ended(call_id, peer, "hangup")

        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            peer.remote_set = True
            echoed = 0
            for transceiver in pc.getTransceivers():
                track = transceiver.receiver.track
                # Only m-lines on which the caller sends have something to return.
                if track is None or transceiver.direction not in ("recvonly", "sendrecv"):
                    continue
                # Same transceiver, so the answer says sendrecv on the very m-line the offer sent on.
                transceiver.sender.replaceTrack(peer.relay.subscribe(track))
                transceiver.direction = "sendrecv"
                echoed += 1
            if not echoed:
                raise ValueError("the offer sends no audio or video to echo")
            await self._flush(peer)
            answer = await pc.createAnswer()
            with host_addresses(self.settings.host_addresses):
                await pc.setLocalDescription(answer)
        except Exception as error:
            peer.closing = True
            self._peers.pop(call_id, None)
            await pc.close()
            if isinstance(error, ValueError):
                raise
            raise ValueError(f"the offer cannot be answered: {error}") from error
        if peer.closing:  # closed while answering
            raise ValueError(f"echo call {call_id} was closed while answering")
        return pc.localDescription.sdp

    async def add_candidate(self, call_id: str, candidate: dict[str, Any] | None) -> None:
        """Add the caller's trickled ICE candidate (an ``RTCIceCandidateInit``; None for the end of candidates).

        Unknown calls and malformed candidates are ignored: a candidate is a
        hint, and a bad one costs only itself.
        """
        peer = self._peers.get(call_id)
        if peer is None or peer.closing:
            return
        peer.pending.append(candidate)
        if peer.remote_set:
            await self._flush(peer)

    async def close(self, call_id: str) -> None:
        """Stop and forget the echo peer of ``call_id`` (a no-op when there is none); ``on_ended`` is not called."""
        peer = self._peers.pop(call_id, None)
        if peer is not None:
            await self._close(peer)

    async def close_all(self) -> None:
        """Close every echo peer, as at shut-down; ``on_ended`` is not called."""
        peers, self._peers = list(self._peers.values()), {}
        await asyncio.gather(*(self._close(peer) for peer in peers), return_exceptions=True)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close(self, peer: _EchoPeer) -> None:
        peer.closing = True
        await peer.pc.close()

    async def _flush(self, peer: _EchoPeer) -> None:
        pending, peer.pending = peer.pending, []
        for init in pending:
            try:
                await peer.pc.addIceCandidate(parse_candidate(init))
            except ValueError as error:
                log.debug("echo: candidate %r ignored: %s", init, error)

    def _ended(self, call_id: str, peer: _EchoPeer, reason: str) -> None:
        """The peer ended by itself: close it and tell the switchboard, once."""
        if peer.closing or self._peers.get(call_id) is not peer:
            return
        del self._peers[call_id]
        task = asyncio.ensure_future(self._report(call_id, peer, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, call_id: str, peer: _EchoPeer, reason: str) -> None:
        await self._close(peer)
        if self.on_ended is None:
            return
        try:
            await self.on_ended(call_id, reason)
        except Exception:
            log.exception("echo: ending call %s (%s) failed", call_id, reason)
