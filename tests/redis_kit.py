"""A private Redis server for the tests that stop and restart it (never the machine's own on 6379), and server processes on it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import websockets.sync.client

from tests.conftest import free_port, serve

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")

# Every process of one deployment signs with the same key, so a token made by one is good on another.
SECRET = "the-bus-tests-share-this-secret-key-between-processes"
Socket = websockets.sync.client.ClientConnection


class PrivateRedis:
    """``redis-server --port <free port> --save ''``, which a test may stop and start again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while self.cli("ping") != "PONG":
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the server at once, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def cli(self, *args: str) -> str:
        """What ``redis-cli`` answers to ``args`` on this server ("" when it does not answer)."""
        assert REDIS_CLI is not None
        done = subprocess.run([REDIS_CLI, "-p", str(self.port), *args], capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else ""

    def channels(self, pattern: str = "*") -> set[str]:
        """The pub/sub channels somebody is subscribed to."""
        return {line for line in self.cli("pubsub", "channels", pattern).splitlines() if line}

    def publish_calls(self) -> int:
        """How many PUBLISH commands the server has run since it started (``INFO commandstats``)."""
        for line in self.cli("info", "commandstats").splitlines():
            if line.startswith("cmdstat_publish:"):
                return int(line.split("calls=", 1)[1].split(",", 1)[0])
        return 0


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A running private Redis server for the block, killed after."""
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def until(condition: Callable[[], object], what: str, seconds: float = 30) -> None:
    """Poll ``condition()`` until it is true; AssertionError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds:g} s"
        time.sleep(0.05)


def bus_env(redis: PrivateRedis, database: str | None, **settings: str) -> dict[str, str]:
    """The environment of one `everything serve` of a deployment on ``redis`` and ``database`` (the ``database`` fixture)."""
    env = {"EVERYTHING_BUS__URL": redis.url, "EVERYTHING_SECRET_KEY": SECRET, **settings}
    # The first process brings the schema up to date; the embedded database does so by default, others when asked.
    return {**env, "EVERYTHING_DATABASE__URL": database, "EVERYTHING_DATABASE__AUTO_MIGRATE": "true"} if database else env


@contextmanager
def processes(workdir: Path, *envs: dict[str, str]) -> Iterator[list[str]]:
    """One `everything serve` per environment, started one after the other (the first migrates); yields their URLs."""
    with ExitStack() as stack:
        yield [stack.enter_context(serve(workdir, env)) for env in envs]


def next_message(ws: Socket, kind: str, seconds: float = 15) -> dict[str, Any]:
    """The next message of type ``kind``, past heartbeats and anything else; TimeoutError after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        message = json.loads(ws.recv(timeout=max(0.0, deadline - time.monotonic())))
        if message["type"] == kind:
            return message
