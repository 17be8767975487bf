"""A real TURN server for tests: Debian's coturn (``turnserver``) on loopback, with TURN REST credentials.

The server listens on 127.0.0.1 (UDP and TCP) on a free port, relays from
127.0.0.1 on a small port range, and takes only credentials minted from
its ``static-auth-secret`` (``use-auth-secret``, as
:func:`kernel.turn_credentials` mints them). No TLS, no DTLS,
no telnet CLI, no configuration file. coturn refuses loopback peers unless
told otherwise (``--allow-loopback-peers``), which is exactly what two
peers on one machine are; it has no default ``denied-peer-ip`` ranges, and
``--allowed-peer-ip=127.0.0.1`` makes sure no build's defaults deny
loopback either.

Use the fixture by importing the module (``from tests import turn_server as
coturn``) and binding ``turn_server = coturn.turn_server`` in the test
module, or by listing ``"tests.turn_server"`` in ``pytest_plugins``. Tests
skip with the reason below when ``turnserver`` is not installed
(``apt-get install coturn``).
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aioice import stun

HOST = "127.0.0.1"
REALM = "everything.test"
RELAY_PORTS = 16  # each allocation takes one; a test needs a handful
TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


@dataclass(frozen=True)
class TurnServer:
    """A running coturn: ``url, secret, port = turn_server`` unpacks its essentials."""

    url: str  # turn:127.0.0.1:<port>?transport=udp
    secret: str  # the static-auth-secret
    port: int
    relay_ports: range  # the UDP ports its allocations relay from
    log_path: Path
    host: str = HOST
    realm: str = REALM

    def __iter__(self) -> Iterator[object]:
        return iter((self.url, self.secret, self.port))

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def log(self) -> str:
        """What coturn has logged so far, to put in an assertion's message."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_ports() -> tuple[int, int]:
    """A listening port free for UDP and TCP, and the first of RELAY_PORTS free UDP ports after it."""
    for _ in range(200):
        # Below Linux's ephemeral range (32768-60999), so that no client socket takes them meanwhile.
        listen = random.randrange(20000, 32000, 32)
        relay = listen + 8
        if (
            _bindable(listen, socket.SOCK_DGRAM)
            and _bindable(listen, socket.SOCK_STREAM)
            and all(_bindable(port, socket.SOCK_DGRAM) for port in range(relay, relay + RELAY_PORTS))
        ):
            return listen, relay
    raise RuntimeError("no free ports on 127.0.0.1 for coturn")


def _answers_stun(port: int) -> bool:
    """True when a STUN Binding request to the UDP port gets its success response."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        probe.sendto(bytes(request), (HOST, port))
        try:
            data = probe.recv(2048)
        except OSError:  # timeout, or ICMP port unreachable while coturn starts
            return False
    response = stun.parse_message(data)
    return response.transaction_id == request.transaction_id and response.message_class == stun.Class.RESPONSE


def _answers_tcp(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.2).close()
    except OSError:
        return False
    return True


def command(port: int, relay_port: int, secret: str, workdir: Path) -> list[str]:
    """The ``turnserver`` command line (``-n``: no configuration file; every option is here)."""
    return [
        TURNSERVER,
        "-n",
        f"--listening-ip={HOST}",
        f"--listening-port={port}",
        f"--relay-ip={HOST}",
        f"--min-port={relay_port}",
        f"--max-port={relay_port + RELAY_PORTS - 1}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        f"--realm={REALM}",
        "--fingerprint",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        # Some builds refuse --allow-loopback-peers without a CLI password, even with --no-cli.
        f"--cli-password={secrets.token_urlsafe(12)}",
        "--allow-loopback-peers",
        f"--allowed-peer-ip={HOST}",
        "--no-multicast-peers",
        "--no-rfc5780",
        "--no-software-attribute",
        "--relay-threads=1",
        # Its own state, never /var/lib/turn or /var/run.
        f"--userdb={workdir / 'turndb'}",
        f"--pidfile={workdir / 'turnserver.pid'}",
        "--log-file=stdout",
        "--simple-log",
        "--verbose",
    ]


@contextmanager
def run_turn_server(workdir: Path, start_timeout: float = 10.0) -> Iterator[TurnServer]:
    """Start coturn with its files in ``workdir``; yield it once it answers on UDP and TCP; stop it after."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, relay_port = _free_ports()
    secret = secrets.token_urlsafe(24)
    log_path = workdir / "turnserver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command(port, relay_port, secret, workdir),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LC_ALL": "C"},
        )
    server = TurnServer(
        url=f"turn:{HOST}:{port}?transport=udp",
        secret=secret,
        port=port,
        relay_ports=range(relay_port, relay_port + RELAY_PORTS),
        log_path=log_path,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while not (_answers_stun(port) and _answers_tcp(port)):
            if process.poll() is not None:
                raise RuntimeError(f"turnserver exited with {process.returncode}:\n{server.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"turnserver did not answer on {HOST}:{port} within {start_timeout} s:\n{server.log()}")
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def turn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnServer]:
    """A coturn on 127.0.0.1 for this test module; skips when coturn is not installed."""
    if not os.access(TURNSERVER, os.X_OK):
        pytest.skip(f"coturn's turnserver is not installed ({TURNSERVER}); apt-get install coturn")
    with run_turn_server(tmp_path_factory.mktemp("coturn")) as server:
        yield server
