"""What the realtime tests share: a signed-in websocket past its hello, waiting for a message type, asking and awaiting a reply."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.testclient import WebSocketTestSession

from tests.conftest import UserClient


@contextmanager
def connect(client: UserClient) -> Iterator[WebSocketTestSession]:
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "kernel.hello"
        yield ws


def receive(ws: WebSocketTestSession, kind: str) -> dict[str, Any]:
    """The next message of type ``kind``, past any others."""
    while True:
        message = ws.receive_json()
        if message["type"] == kind:
            return message


def ask(ws: WebSocketTestSession, message: dict[str, Any]) -> dict[str, Any]:
    """Send a message with an id and return its reply or error (unnamed when the message could not even be read)."""
    ws.send_json({"id": "q", **message})
    while True:
        answer = ws.receive_json()
        if answer.get("ref") == "q" or (answer["type"] == "error" and answer["ref"] is None):
            return answer
