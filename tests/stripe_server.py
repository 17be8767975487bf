"""localstripe, a stateful Stripe server from PyPI, on loopback for the Stripe tests; and Stripe's webhook signature.

localstripe's own command line binds every interface; this runs its app on
127.0.0.1 only. Its store is emptied between tests (``DELETE /_config/data``),
and it signs and posts its webhooks to the URL and secret registered with
``POST /_config/webhooks/<id>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.conftest import free_port

LAUNCH = (
    "import sys\n"
    "from aiohttp import web\n"
    "from localstripe.server import app\n"
    "web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None)\n"
)


@contextmanager
def localstripe() -> Iterator[str]:
    """Run localstripe on a free loopback port; yields its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", LAUNCH, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"localstripe exited: {process.stderr.read() if process.stderr else ''}")
            try:
                httpx.delete(f"{url}/_config/data", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("localstripe did not start within 30 s") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def reset(url: str, webhook_url: str, secret: str) -> None:
    """Empty localstripe's store and point its webhooks at ``webhook_url``, signed with ``secret``."""
    httpx.delete(f"{url}/_config/data", timeout=5).raise_for_status()
    httpx.post(f"{url}/_config/webhooks/everything", data={"url": webhook_url, "secret": secret}, timeout=5).raise_for_status()


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header exactly as Stripe makes one: ``t=<unix time>,v1=<HMAC-SHA256 of "t.payload">``."""
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def event(event_id: str, kind: str, data_object: dict[str, Any], created: int | None = None) -> bytes:
    """A Stripe event body of the shape Stripe posts."""
    body = {
        "id": event_id,
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": created or int(time.time()),
        "type": kind,
        "livemode": False,
        "pending_webhooks": 1,
        "data": {"object": data_object},
    }
    return json.dumps(body).encode()
