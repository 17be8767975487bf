"""A whole deployment for tests: `everything serve` processes on one PostgreSQL database and one Redis, behind nginx.

``with Deployment(folder) as deployment:`` makes a fresh database on
``EVERYTHING_TEST_DATABASE_URL``'s server, writes one settings file that
every host reads (the database, the Redis bus under a channel prefix of its
own, a shared ``secret_key``, media kept in the database, short call
timings), migrates once, starts the hosts (each its own data folder and
port, all at once) and Debian's nginx in front of them, alternating
between them round-robin. ``deployment.url`` is the one address a client
knows. Each proxied response names the host that answered it in
``X-Upstream`` (:meth:`Deployment.host_of`), so that a test can say which
host took a request or holds a socket.

A host can be stopped as an orchestrator does (:meth:`Deployment.terminate`,
SIGTERM), or killed (:meth:`Deployment.kill`, SIGKILL), and started again
on its port (:meth:`Deployment.start`). Each host's output goes to a log
file; a failing test that used the ``deployment`` fixture gets the lines
its hosts and nginx wrote meanwhile in its report.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import httpx
import pytest
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.sync.client import ClientConnection, connect

from kernel import RealtimeClient
from sandbox.testing import Realtime
from tests.conftest import POSTGRES_URL, REDIS_URL, free_port, postgres_database, serve_env, wait_ready

if TYPE_CHECKING:
    from plugins.calls.client import Call, CallClient

# Debian puts nginx in /usr/sbin, which a non-root PATH may leave out.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
SKIP_REASON = (
    "set EVERYTHING_TEST_DATABASE_URL and EVERYTHING_TEST_REDIS_URL (.ci/run does when PostgreSQL and Redis answer)"
    if not (POSTGRES_URL and REDIS_URL)
    else "Debian's nginx is not installed (apt-get install nginx-light)"
    if NGINX is None
    else None
)
UPSTREAM_HEADER = "X-Upstream"
BOOT_SECONDS = 60.0
STOP_SECONDS = 30.0

# Calls wait this long for a dropped party to resume; short so that a test can outlast a sweep inside it.
RECONNECT_GRACE_SECONDS = 8.0
# The calls' sweep interval: several passes fit in the grace.
SWEEP_SECONDS = 1.0
# A killed host cannot say its sockets closed: they count as open until their presence lapses, after
# three heartbeats (75 s by default); short, so that a test can wait for it.
HEARTBEAT_SECONDS = 2.0
PRESENCE_SECONDS = 3 * HEARTBEAT_SECONDS


class Host:
    """One `everything serve` process of the deployment: its folder, port, log and (while it runs) process."""

    def __init__(self, name: str, folder: Path, port: int) -> None:
        self.name = name
        self.folder = folder
        self.port = port
        self.log = folder / "serve.log"
        self.process: subprocess.Popen[str] | None = None
        folder.mkdir(parents=True)

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.address}{'' if self.running else ' (stopped)'}>"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The host's own address, past the proxy: for waiting on it, never for a test's traffic."""
        return f"http://{self.address}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Deployment:
    """Hosts of one deployment behind nginx, on a database made for it and Redis; a context manager."""

    def __init__(self, root: Path, hosts: int = 2) -> None:
        if SKIP_REASON is not None:
            raise RuntimeError(SKIP_REASON)
        self.root = root
        self.config = root / "everything.toml"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hosts = [Host(chr(ord("a") + index), root / f"host-{index + 1}", free_port()) for index in range(hosts)]
        self.nginx_folder = root / "nginx"
        self.nginx: subprocess.Popen[str] | None = None
        self.database_url = ""
        self._stack = ExitStack()
        self._marks: dict[Path, int] = {}

    # Starting and stopping ------------------------------------------------------------

    def __enter__(self) -> Self:
        assert POSTGRES_URL is not None
        self.database_url = self._stack.enter_context(postgres_database(POSTGRES_URL))
        try:
            self.config.write_text(self.settings_file())
            # Once for the deployment, before any host: two hosts must not migrate the same database at once.
            self.cli("db", "upgrade")
            for host in self.hosts:
                self._spawn(host)
            for host in self.hosts:
                self._wait_ready(host)
            self._start_nginx()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.nginx is not None and self.nginx.poll() is None:
                self.nginx.terminate()
                self.nginx.wait(STOP_SECONDS)
            for host in self.hosts:
                if host.running:
                    assert host.process is not None
                    host.process.terminate()
            for host in self.hosts:
                if host.process is not None:
                    try:
                        host.process.wait(STOP_SECONDS)
                    except subprocess.TimeoutExpired:
                        host.process.kill()
                        host.process.wait(STOP_SECONDS)
        finally:
            self._stack.close()  # the database goes last, once nothing holds a connection to it

    def start(self, host: Host) -> None:
        """Start ``host`` (again, on its port) and wait until it is ready."""
        if host.running:
            return
        if host.process is not None:
            host.process.wait(STOP_SECONDS)  # its port is free once it has exited
        self._spawn(host)
        self._wait_ready(host)

    def start_all(self) -> None:
        """Start every host that is not running, all at once, and wait until each is ready."""
        stopped = [host for host in self.hosts if not host.running]
        for host in stopped:
            if host.process is not None:
                host.process.wait(STOP_SECONDS)
            self._spawn(host)
        for host in stopped:
            self._wait_ready(host)

    def terminate(self, host: Host) -> None:
        """SIGTERM ``host``, as an orchestrator stopping it does; it drains and exits by itself."""
        self._signal(host, signal.SIGTERM)

    def kill(self, host: Host) -> None:
        """SIGKILL ``host``: it ends at once, without a word to anyone."""
        self._signal(host, signal.SIGKILL)
        assert host.process is not None
        host.process.wait(STOP_SECONDS)

    def wait_exited(self, host: Host, seconds: float = STOP_SECONDS) -> int:
        """Until ``host``'s process has exited; its exit code."""
        assert host.process is not None
        return host.process.wait(seconds)

    def _signal(self, host: Host, signum: signal.Signals) -> None:
        if not host.running:
            raise AssertionError(f"{host} is not running")
        assert host.process is not None
        host.process.send_signal(signum)

    def _spawn(self, host: Host) -> None:
        with host.log.open("a") as log:
            log.write(f"--- starting host {host.name} on {host.address}\n")
            log.flush()
            host.process = subprocess.Popen(
                [sys.executable, "-m", "kernel.cli", "serve", "--port", str(host.port), "--data-dir", str(host.folder / "data")],
                cwd=host.folder,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def _wait_ready(self, host: Host) -> None:
        assert host.process is not None
        wait_ready(host.url, host.process, output=lambda: host.log.read_text(), seconds=BOOT_SECONDS)

    def env(self) -> dict[str, str]:
        """The environment of the deployment's processes: the tests' own settings out, the shared settings file in."""
        return {**serve_env(), "EVERYTHING_CONFIG": str(self.config)}

    def cli(self, *args: str) -> str:
        """Run ``everything ARGS`` against the deployment, as an operator on one of its hosts would; its output."""
        folder = self.root / "operator"
        folder.mkdir(exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "kernel.cli", *args], cwd=folder, env=self.env(), capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise AssertionError(f"everything {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done.stdout

    # Settings and nginx ---------------------------------------------------------------

    def settings_file(self) -> str:
        """What every host reads: one database, one bus, one secret key, one media store; the calls' short timings."""
        assert REDIS_URL is not None
        calls = {"host_addresses": ["127.0.0.1"], "reconnect_grace_seconds": RECONNECT_GRACE_SECONDS, "sweep_seconds": SWEEP_SECONDS}
        sections: dict[str, dict[str, Any]] = {
            "server": {"base_url": self.url},
            "database": {"url": self.database_url},
            "bus": {"url": REDIS_URL, "channel_prefix": f"deployment-{secrets.token_hex(4)}"},
            # Long: a switch or a grant that reaches the other host in time came over the bus, not by a re-read.
            "entitlements": {"refresh_seconds": 60},
            "realtime": {"heartbeat_seconds": HEARTBEAT_SECONDS},
            "media": {"storage": "database"},
            "plugins.calls": calls,
            "plugins.spaces": {"host_addresses": ["127.0.0.1"]},
        }
        lines = [f"secret_key = {json.dumps(secrets.token_urlsafe(48))}"]
        for name, values in sections.items():
            lines.append(f"\n[{name}]")
            lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        return "\n".join(lines) + "\n"

    def nginx_config(self) -> str:
        """nginx in front of the hosts: round-robin, websockets passed through, a stopped host skipped."""
        folder = self.nginx_folder
        servers = "\n".join(f"        server {host.address} max_fails=0;" for host in self.hosts)
        # A root master's workers run as nobody, who cannot enter pytest's private temporary folders.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        temp = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return f"""{user}
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} info;
events {{ worker_connections 1024; }}
http {{
    access_log {folder / "access.log"};
{temp}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        "" close;
    }}
    upstream everything {{
        # max_fails=0: a stopped host is skipped request by request, never benched, so that a host
        # started again takes its turn at once.
{servers}
    }}
    server {{
        listen 127.0.0.1:{self.port};
        client_max_body_size 64m;
        location / {{
            proxy_pass http://everything;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            add_header {UPSTREAM_HEADER} $upstream_addr always;
        }}
    }}
}}
"""

    def _start_nginx(self) -> None:
        assert NGINX is not None
        self.nginx_folder.mkdir()
        conf = self.nginx_folder / "nginx.conf"
        conf.write_text(self.nginx_config())
        with (self.nginx_folder / "stderr.log").open("a") as log:
            self.nginx = subprocess.Popen(
                [NGINX, "-p", str(self.nginx_folder), "-c", str(conf), "-g", "daemon off;"],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        wait_ready(self.url, self.nginx, output=self._nginx_output, seconds=BOOT_SECONDS)

    def _nginx_output(self) -> str:
        return "".join(path.read_text() for path in (self.nginx_folder / "stderr.log", self.nginx_folder / "error.log") if path.exists())

    # Who answered ------------------------------------------------------------------------

    def host_of(self, response: httpx.Response) -> Host:
        """The host that answered ``response`` (through nginx)."""
        return self.host_at(response.headers.get(UPSTREAM_HEADER, ""))

    def host_at(self, upstream: str) -> Host:
        """The host nginx's ``$upstream_addr`` names; past a skipped host, the last one tried."""
        address = upstream.rsplit(",", 1)[-1].strip()
        for host in self.hosts:
            if host.address == address:
                return host
        raise AssertionError(f"no host answers at {upstream!r}")

    def socket_host(self, socket: ClientConnection | Realtime | RealtimeClient) -> Host:
        """The host holding a realtime socket: a bare one, the kit's :class:`Realtime` or a client's current one."""
        if isinstance(socket, Realtime):
            socket = socket.ws
        if isinstance(socket, RealtimeClient):
            # The client keeps its socket to itself; the handshake's answer is the only place nginx names the host.
            current: AsyncConnection | None = socket._ws
            if current is None or current.response is None:
                raise AssertionError(f"@{socket.username} holds no socket")
            return self.host_at(current.response.headers.get(UPSTREAM_HEADER, ""))
        assert socket.response is not None
        return self.host_at(socket.response.headers.get(UPSTREAM_HEADER, ""))

    def hosts_of(self, responses: Sequence[httpx.Response]) -> set[Host]:
        """The hosts that answered ``responses``."""
        return {self.host_of(response) for response in responses}

    @contextmanager
    def realtime(self, token: str) -> Iterator[Realtime]:
        """A realtime socket through nginx for the owner of the API ``token``, past its hello, for the block."""
        url = self.url.replace("http://", "ws://", 1) + "/ws"
        with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, proxy=None) as ws:
            yield Realtime(ws)

    # Logs ---------------------------------------------------------------------------------

    def logs(self) -> Iterator[Path]:
        """Every log file of the deployment: each host's, then nginx's."""
        for host in self.hosts:
            yield host.log
        for name in ("stderr.log", "error.log"):
            yield self.nginx_folder / name

    def mark_logs(self) -> None:
        """Remember where each log ends now: :meth:`logs_since_mark` shows only what comes after."""
        self._marks = {path: path.stat().st_size if path.exists() else 0 for path in self.logs()}

    def logs_since_mark(self, lines: int = 200) -> str:
        """The last ``lines`` lines of each log written since :meth:`mark_logs`, headed by the log's name."""
        parts = []
        for path in self.logs():
            if not path.exists():
                continue
            with path.open("rb") as handle:
                handle.seek(self._marks.get(path, 0))
                written = handle.read().decode(errors="replace").splitlines()
            if written:
                parts.append(f"=== {path.relative_to(self.root)} ===\n" + "\n".join(written[-lines:]))
        return "\n".join(parts)


# Calls across the hosts --------------------------------------------------------------------
# tests.test_calls_media is imported where it is used: this module is a pytest plugin, loaded
# before the test modules, and importing one of them here would keep pytest from rewriting its asserts.


@asynccontextmanager
async def on_two_hosts(deployment: Deployment, caller_token: str, callee_token: str) -> AsyncIterator[tuple[CallClient, CallClient]]:
    """Calls clients for the owners of the two API tokens, through nginx, their sockets held by different hosts."""
    from plugins.calls.client import CallClient
    from tests.test_calls_media import ALICE_TONE, BOBBY_TONE

    async with (
        CallClient(deployment.url, token=caller_token, host_addresses=["127.0.0.1"], tone_hz=ALICE_TONE) as calling,
        CallClient(deployment.url, token=callee_token, host_addresses=["127.0.0.1"], tone_hz=BOBBY_TONE) as called,
    ):
        for _ in range(4):
            if deployment.socket_host(called) is not deployment.socket_host(calling):
                break
            await called.reconnect()  # round-robin hands the next socket to the other host
        assert deployment.socket_host(called) is not deployment.socket_host(calling)
        yield calling, called


async def connected(caller: CallClient, callee: CallClient) -> tuple[Call, Call]:
    """``caller`` calls ``callee``, who answers; both ends once each hears the other."""
    from tests.test_calls_media import TIMEOUT, heard_audio

    outgoing = await caller.call(callee.username, media="audio")
    assert outgoing.end_reason is None, f"the call ended at once: {outgoing.end_reason}"
    incoming = await asyncio.wait_for(callee.incoming.get(), TIMEOUT)
    await incoming.answer()
    await outgoing.wait_connected(TIMEOUT)
    await outgoing.received.wait_for(heard_audio, TIMEOUT)
    await incoming.received.wait_for(heard_audio, TIMEOUT)
    return outgoing, incoming


async def hears_more(call: Call, seconds: float) -> None:
    """Until ``call`` has received ``seconds`` more of the other side's audio."""
    from tests.test_calls_media import SECOND_OF_AUDIO, TIMEOUT

    frames = call.received.audio_frames + round(seconds * SECOND_OF_AUDIO)
    await call.received.wait_for(lambda media: media.audio_frames >= frames, TIMEOUT + seconds)


async def lose_network(client: CallClient) -> None:
    """Cut ``client``'s socket as a lost network does (no close frame), and keep it offline until it reconnects."""
    from tests.test_calls_media import TIMEOUT

    client.reconnect_on_drop = False
    ws = client._ws  # the client offers no way to lose its network on purpose
    assert ws is not None
    ws.transport.abort()
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)


async def until_held_elsewhere(deployment: Deployment, client: CallClient, left: Host) -> None:
    """Until ``client`` has reconnected, through nginx, to a host other than ``left``."""
    from tests.test_calls_media import TIMEOUT

    deadline = time.monotonic() + TIMEOUT
    while client._ws is None or deployment.socket_host(client) is left:
        assert time.monotonic() < deadline, f"@{client.username} is still on {left} or nowhere after {TIMEOUT:g} s"
        await asyncio.sleep(0.05)


def next_request_away_from(deployment: Deployment, client: httpx.Client, host: Host, probe: str = "/healthz") -> None:
    """Send ``probe`` requests until one lands on ``host``, so that round-robin sends ``client``'s next request elsewhere."""
    for _ in range(len(deployment.hosts) + 1):
        if deployment.host_of(client.get(probe)) is host:
            return
    raise AssertionError(f"no request reached {host}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test that used a deployment shows what its hosts and nginx logged meanwhile."""
    report = yield
    deployment = getattr(item, "funcargs", {}).get("deployment")
    if report.failed and isinstance(deployment, Deployment):
        report.sections.append(("deployment logs", deployment.logs_since_mark() or "(nothing logged)"))
    return report


def deployment_marks() -> list[pytest.MarkDecorator]:
    """What a module of deployment tests carries: skipped without PostgreSQL, Redis or nginx; one xdist worker for all."""
    return [pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""), pytest.mark.xdist_group("deployment")]
