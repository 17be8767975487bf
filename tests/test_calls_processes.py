"""Calls between two server processes of one deployment, over the Redis bus.

Alice's socket is held by one process and Bob's by the other: the invite
must find Bob online through the bus's presence, ring him there, and every
later message must reach the one connection the call is bound to.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from plugins.calls.client import CallClient
from tests.conftest import REDIS_URL, serve
from tests.test_calls_media import ALICE_TONE, BOBBY_TONE, TIMEOUT, assert_tone, grant_premium, heard_audio, sign_up_with_token

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="set EVERYTHING_TEST_REDIS_URL to a Redis server (.ci/run does when Redis answers)")


async def test_a_call_connects_across_two_server_processes(tmp_path: Path) -> None:
    assert REDIS_URL is not None
    (tmp_path / "everything.toml").write_text('[plugins.calls]\nhost_addresses = ["127.0.0.1"]\n')
    env = {"EVERYTHING_BUS__URL": REDIS_URL}
    with serve(tmp_path, env) as first, serve(tmp_path, env) as second:
        tokens = {"alice": sign_up_with_token(first, "alice"), "bobby": sign_up_with_token(second, "bobby")}
        grant_premium(tmp_path, "alice")
        with httpx.Client(base_url=second, trust_env=False, timeout=30) as http:
            assert http.put("/api/users/alice/follow", headers={"Authorization": f"Bearer {tokens['bobby']}"}).status_code < 300
        deadline = time.monotonic() + 20
        while not httpx.get(f"{first}/api/calls/can-call/bobby", headers={"Authorization": f"Bearer {tokens['alice']}"}).json()["allowed"]:
            assert time.monotonic() < deadline, "alice's grant never showed"
            await asyncio.sleep(0.2)
        alice = CallClient(first, token=tokens["alice"], host_addresses=["127.0.0.1"], tone_hz=ALICE_TONE)
        bobby = CallClient(second, token=tokens["bobby"], host_addresses=["127.0.0.1"], tone_hz=BOBBY_TONE)
        async with alice, bobby:
            outgoing = await alice.call("bobby", media="audio")
            assert outgoing.end_reason is None, f"the call ended at once: {outgoing.end_reason}"
            incoming = await asyncio.wait_for(bobby.incoming.get(), TIMEOUT)
            await incoming.answer()
            await outgoing.wait_connected(TIMEOUT)
            await incoming.received.wait_for(heard_audio, TIMEOUT)
            await outgoing.received.wait_for(heard_audio, TIMEOUT)
            assert_tone(incoming.received, ALICE_TONE)
            assert_tone(outgoing.received, BOBBY_TONE)
            await outgoing.hangup()
            await incoming.wait_ended(TIMEOUT)
            assert incoming.end_reason == "hangup"
