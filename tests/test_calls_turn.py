"""Calls through a real TURN server: coturn on loopback takes the credentials the calls plugin mints.

The plugin never talks to the TURN server. It hands each client
credentials derived from the secret it shares with coturn
(``use-auth-secret``); these tests check that coturn agrees — it relays
for fresh ones, refuses stale or forged ones — and that two aiortc peers
restricted to relayed candidates really talk through it.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aioice import Candidate, Connection, TransportPolicy, stun
from aioice.turn import create_turn_endpoint
from aiortc import RTCIceTransportPolicy, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from starlette.applications import Starlette

from kernel import create_app, rtc_configuration, turn_credentials
from kernel import ice_servers as ice_servers_for
from plugins.calls.settings import CallsSettings
from tests import turn_server as coturn
from tests.conftest import make_settings, running, sign_up

turn_server = coturn.turn_server  # the module's coturn, shared by its tests

USER_ID = 42
SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms


class Receiver:
    """A datagram protocol that queues what arrives, with the sender's address."""

    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: Any = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def allocate(server: coturn.TurnServer, username: str, password: str) -> tuple[Any, Receiver]:
    """A TURN allocation on ``server`` with these credentials, as aioice makes one for ICE."""
    return await create_turn_endpoint(Receiver, server_addr=server.address, username=username, password=password)


async def release(transport: Any, protocol: Receiver) -> None:
    """Delete the allocation on the TURN server and close its socket."""
    transport.close()
    await asyncio.wait_for(protocol.closed, 5)


def ice_servers(server: coturn.TurnServer, user_id: int, ttl: int = 600) -> list[dict[str, Any]]:
    """RTCIceServer dictionaries for ``user_id``, as ``GET /api/calls/ice-servers`` answers them."""
    username, password, _ = turn_credentials(server.secret, user_id, ttl)
    return [{"urls": [server.url], "username": username, "credential": password}]


def relay_only_peer(servers: list[dict[str, Any]]) -> RTCPeerConnection:
    configuration = rtc_configuration(servers)
    configuration.iceTransportPolicy = RTCIceTransportPolicy.RELAY
    return RTCPeerConnection(configuration)


class ToneTrack(MediaStreamTrack):
    """A 440 Hz sine, 20 ms frames of 48 kHz mono, as fast as they are asked for."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.pts = 0

    async def recv(self) -> av.AudioFrame:
        await asyncio.sleep(0.02)
        t = (np.arange(FRAME_SAMPLES) + self.pts) / SAMPLE_RATE
        samples = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self.pts += FRAME_SAMPLES
        return frame


def loudness(frame: av.AudioFrame) -> float:
    return float(np.sqrt(np.mean(frame.to_ndarray().astype(np.float64) ** 2)))


async def relay_addresses(servers: list[dict[str, Any]]) -> list[str]:
    """The addresses of the relay candidates a relay-only peer configured with ``servers`` offers."""
    peer = relay_only_peer(servers)
    try:
        peer.createDataChannel("probe")
        await peer.setLocalDescription(await peer.createOffer())
        candidates = [line.split() for line in peer.localDescription.sdp.splitlines() if line.startswith("a=candidate:")]
        return [fields[4] for fields in candidates if fields[7] == "relay"]
    finally:
        await peer.close()


def local_candidates(peer: RTCPeerConnection) -> list[Any]:
    transport = peer.sctp.transport.transport if peer.sctp else peer.getTransceivers()[0].receiver.transport.transport
    return transport.iceGatherer.getLocalCandidates()


# --- credentials -------------------------------------------------------------------------------


async def test_minted_credentials_allocate_a_relay_on_loopback(turn_server: coturn.TurnServer) -> None:
    username, password, _ = turn_credentials(turn_server.secret, USER_ID, 600)

    transport, protocol = await allocate(turn_server, username, password)
    try:
        host, port = transport.get_extra_info("sockname")
        assert host == "127.0.0.1"
        assert port in turn_server.relay_ports, turn_server.log()
    finally:
        await release(transport, protocol)


async def test_the_relay_carries_datagrams_to_a_loopback_peer_and_back(turn_server: coturn.TurnServer) -> None:
    username, password, _ = turn_credentials(turn_server.secret, USER_ID, 600)
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    transport, client = await allocate(turn_server, username, password)
    try:
        peer_address = peer_transport.get_extra_info("sockname")
        transport.sendto(b"hello through coturn", peer_address)
        data, relayed_from = await asyncio.wait_for(peer.datagrams.get(), 5)
        assert data == b"hello through coturn"
        assert relayed_from == transport.get_extra_info("sockname")  # the peer sees the relay, not the client

        peer_transport.sendto(b"and back", relayed_from)
        data, sender = await asyncio.wait_for(client.datagrams.get(), 5)
        assert (data, sender) == (b"and back", peer_address)
    finally:
        await release(transport, client)
        peer_transport.close()


async def test_an_ice_agent_with_the_relay_policy_gathers_one_relay_candidate(turn_server: coturn.TurnServer) -> None:
    username, password, _ = turn_credentials(turn_server.secret, USER_ID, 600)
    agent = Connection(
        ice_controlling=True,
        turn_server=turn_server.address,
        turn_username=username,
        turn_password=password,
        transport_policy=TransportPolicy.RELAY,
    )
    try:
        await agent.gather_candidates()
        candidates: list[Candidate] = agent.local_candidates
        assert [(c.type, c.host) for c in candidates] == [("relay", "127.0.0.1")], turn_server.log()
    finally:
        await agent.close()


async def test_an_expired_credential_is_refused(turn_server: coturn.TurnServer) -> None:
    username, password, expires_at = turn_credentials(turn_server.secret, USER_ID, 60, now=time.time() - 3600)
    assert expires_at < time.time()

    with pytest.raises(stun.TransactionFailed) as refused:
        await allocate(turn_server, username, password)
    assert refused.value.response.error_code == 401


async def test_a_credential_signed_with_another_secret_is_refused(turn_server: coturn.TurnServer) -> None:
    username, password, _ = turn_credentials("not-the-shared-secret", USER_ID, 600)

    with pytest.raises(stun.TransactionFailed) as refused:
        await allocate(turn_server, username, password)
    assert refused.value.response.error_code == 401


async def test_a_credential_whose_expiry_was_moved_forward_is_refused(turn_server: coturn.TurnServer) -> None:
    # A leaked, expired credential cannot be revived by editing the expiry in its username.
    stale_username, password, expires_at = turn_credentials(turn_server.secret, USER_ID, 60, now=time.time() - 3600)
    revived = stale_username.replace(str(expires_at), str(expires_at + 7200), 1)

    with pytest.raises(stun.TransactionFailed) as refused:
        await allocate(turn_server, revived, password)
    assert refused.value.response.error_code == 401


async def test_the_ice_servers_minted_for_a_user_give_their_peer_a_relay(turn_server: coturn.TurnServer) -> None:
    settings = CallsSettings(turn_urls=[turn_server.url], turn_secret=turn_server.secret)

    answer = ice_servers_for(settings, USER_ID)

    assert await relay_addresses(answer["iceServers"]) == ["127.0.0.1"], turn_server.log()


# --- two peers --------------------------------------------------------------------------------


async def test_two_relay_only_peers_exchange_audio_and_messages_through_the_turn_server(
    turn_server: coturn.TurnServer,
) -> None:
    caller = relay_only_peer(ice_servers(turn_server, user_id=1))
    callee = relay_only_peer(ice_servers(turn_server, user_id=2))
    heard: asyncio.Queue[av.AudioFrame] = asyncio.Queue()
    said: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    listening: list[asyncio.Task[None]] = []
    try:
        caller.addTrack(ToneTrack())
        channel = caller.createDataChannel("chat")
        channel.on("open", lambda: channel.send("hello, callee"))

        @callee.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            async def listen() -> None:
                while True:
                    await heard.put(await track.recv())

            listening.append(asyncio.ensure_future(listen()))

        @callee.on("datachannel")
        def on_datachannel(incoming: Any) -> None:
            incoming.on("message", lambda message: said.done() or said.set_result(message))

        # aiortc gathers in setLocalDescription, so each description carries its candidates.
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)

        assert await asyncio.wait_for(said, 10) == "hello, callee", turn_server.log()
        frames = [await asyncio.wait_for(heard.get(), 5) for _ in range(25)]
        assert max(loudness(frame) for frame in frames) > 1000  # the tone, not silence

        # Neither side had anything but a relayed address on coturn to offer: the media went through it.
        for peer in (caller, callee):
            assert {(c.type, c.ip) for c in local_candidates(peer)} == {("relay", "127.0.0.1")}
        assert caller.connectionState == callee.connectionState == "connected"
    finally:
        for task in listening:
            task.cancel()
        await caller.close()
        await callee.close()


# --- the calls API ------------------------------------------------------------------------------


@pytest.fixture
def turn_app(tmp_path: Path, database_url: str | None, turn_server: coturn.TurnServer) -> Iterator[Starlette]:
    """The application, with ``[plugins.calls]`` pointing clients at the coturn."""
    calls = {"turn_urls": [turn_server.url], "turn_secret": turn_server.secret, "turn_ttl_seconds": 300}
    application = create_app(make_settings(tmp_path / "data", database_url, plugins={"calls": calls}))
    with running(application):
        yield application


async def test_the_ice_servers_the_api_hands_out_gather_a_relay_on_the_turn_server(
    turn_app: Starlette, turn_server: coturn.TurnServer
) -> None:
    alice = sign_up(turn_app, "alice")
    response = alice.get("/api/calls/ice-servers")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["ttl"] == 300
    [server] = answer["iceServers"]
    assert server["urls"] == [turn_server.url]
    expires_at, _, user_id = server["username"].partition(":")
    assert 290 <= int(expires_at) - time.time() <= 300
    assert user_id == str(turn_app.state.kernel.user("alice").id)

    # Used as a browser would: the answer is the RTCConfiguration's iceServers.
    assert await relay_addresses(answer["iceServers"]) == ["127.0.0.1"], turn_server.log()
