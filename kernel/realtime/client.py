"""A client of the realtime channel in Python: what every bot, script, test and benchmark speaking ``/ws`` shares.

A deployment is reached the way a phone app reaches it: the JSON API over
HTTP (``httpx``) and one realtime socket (``websockets``), both as one user.
This module holds what any such client needs, whatever the plugin it speaks
to: signing in (an API token, or a username and password from which it mints
a token and revokes it on close), opening ``/ws`` and reading the
``kernel.hello``, a reader task that hands every message on, and
:meth:`RealtimeClient.request`, which sends a message with a fresh ``id`` and
awaits the answer that carries it as ``ref`` (docs/realtime.md)::

    async with RealtimeClient("http://127.0.0.1:8000", token=token) as client:
        await client.api("POST", "/api/feed/posts", {"text": "hello"})
        pong = await client.request({"type": "kernel.ping"})

A plugin's client subclasses it (``CallClient``, ``SpaceClient``), names
itself in :attr:`~RealtimeClient.client_name`, raises its own
:class:`RealtimeError` subclass (:attr:`~RealtimeClient.error_type`) and
overrides the hooks: :meth:`~RealtimeClient.prepare` (after signing in,
before the socket opens), :meth:`~RealtimeClient.handle` (a message that
answers no request) and :meth:`~RealtimeClient.socket_closed` (the server
closed the socket or it dropped).

It speaks the public protocol only, through the public client libraries, and
never imports the server: a client may run where the kernel does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable
from typing import Any, ClassVar, Self

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("kernel.realtime.client")

OPEN_TIMEOUT = 30.0  # seconds to open the socket and to be greeted; also the HTTP timeout


class RealtimeError(Exception):
    """The server refused: an ``error`` answer on the socket, or an error response of the JSON API.

    ``code`` is the protocol's error code (``premium_required``,
    ``not_allowed``…; ``http_<status>`` when the response named none),
    ``message`` its text and ``details`` the rest of the error
    (``feature``, ``plan``, ``upgrade_url`` for ``premium_required``).
    A plugin's client raises a subclass of its own, so that its callers
    can catch either that or this.
    """

    def __init__(self, code: str, message: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.details = details or {}


def websocket_url(base_url: str) -> str:
    """The realtime endpoint of the deployment at ``base_url`` (``http://host:port`` → ``ws://host:port/ws``)."""
    return base_url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"


async def connect_socket(
    base_url: str, token: str, *, timeout: float = OPEN_TIMEOUT, **options: Any
) -> tuple[ClientConnection, dict[str, Any]]:
    """Open ``/ws`` as the owner of the API token ``token`` and read its greeting: the socket and the ``kernel.hello``.

    For callers that hold a socket without :class:`RealtimeClient` (a
    benchmark's thousands of bare sockets). ``options`` go to
    :func:`websockets.asyncio.client.connect` (``max_size``,
    ``compression``, ``ping_interval``…); no proxy is ever used. Raises
    :class:`RealtimeError` ``unexpected_greeting``, the socket closed, when
    the first message is anything else; ``TimeoutError`` after ``timeout``.
    """
    ws = await connect(
        websocket_url(base_url), additional_headers={"Authorization": f"Bearer {token}"}, proxy=None, open_timeout=timeout, **options
    )
    try:
        hello = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    except BaseException:
        await ws.close()
        raise
    if not isinstance(hello, dict) or hello.get("type") != "kernel.hello":
        await ws.close()
        kind = hello.get("type") if isinstance(hello, dict) else hello
        raise RealtimeError("unexpected_greeting", f"the server greeted with {kind!r}")
    return ws, hello


class RealtimeClient:
    """One user's connection to a deployment: the JSON API and the realtime socket, as an async context manager.

    Give ``token`` (an API token) or ``username`` and ``password`` (the
    client then logs in, mints a token named :attr:`client_name` and
    revokes it on :meth:`close`). ``request_timeout`` bounds the wait for
    an answer. Use it as ``async with``, or call :meth:`connect` and
    :meth:`close`. It holds no global state: any number of clients share
    one event loop.

    What was greeted is in :attr:`hello`, the user in :attr:`user`. Messages
    that answer a :meth:`request` go to it; every other one goes to
    :meth:`handle`, in the order it arrived, on the reader task: a handler
    must not block, and starts longer work with :meth:`_background`.
    """

    client_name: ClassVar[str] = "realtime client"
    """What the client calls itself: the name of a token it mints, of its reader task and in its log lines."""
    error_type: ClassVar[type[RealtimeError]] = RealtimeError
    """What it raises when the server refuses; a subclass of :class:`RealtimeError`."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        request_timeout: float = 15.0,
    ) -> None:
        if token is None and (username is None or password is None):
            raise ValueError("give a token, or a username and a password")
        self.base_url = base_url.rstrip("/")
        self.request_timeout = request_timeout
        self.hello: dict[str, Any] = {}  # the last kernel.hello
        self.user: dict[str, Any] = {}  # the hello's user
        self._token = token
        self._username, self._password = username, password
        self._minted_token_id: int | None = None
        self._http: httpx.AsyncClient | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._connected = asyncio.Event()  # set while a greeted socket is open

    @property
    def username(self) -> str:
        """Our username: the greeting's, or before it the one we log in with."""
        return str(self.user.get("username", self._username or ""))

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # Connecting ---------------------------------------------------------------------------

    async def connect(self) -> Self:
        """Log in if need be, :meth:`prepare`, then open the socket; on any failure, close what was opened and raise."""
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=OPEN_TIMEOUT, trust_env=False)
        try:
            if self._token is None:
                await self._log_in()
            self._http.headers["Authorization"] = f"Bearer {self._token}"
            await self.prepare()
            await self._open_socket()
        except BaseException:
            await self.close()
            raise
        return self

    async def prepare(self) -> None:
        """Signed in, the socket not open yet: fetch what handling its first messages needs. Nothing by default."""

    async def _log_in(self) -> None:
        """Log in with the password and mint a token; from then on the token speaks for us, not the session."""
        assert self._http is not None
        response = await self._http.post("/api/auth/login", json={"username": self._username, "password": self._password})
        login = self._json_or_raise(response)
        minted = await self._http.post("/api/auth/tokens", json={"name": self.client_name}, headers={"X-CSRF-Token": login["csrf_token"]})
        token = self._json_or_raise(minted)
        self._token, self._minted_token_id = token["token"], token["id"]
        self._http.cookies.clear()

    async def _open_socket(self) -> None:
        """Open a socket, read the greeting and start reading it; a subclass calls it again to reconnect."""
        assert self._token is not None
        try:
            ws, self.hello = await connect_socket(self.base_url, self._token)
        except RealtimeError as error:
            if isinstance(error, self.error_type):
                raise
            # Callers catch the plugin's error (CallError, SpaceError) for every refusal, a bad greeting included.
            raise self.error_type(error.code, error.message, error.details) from error
        self.user = self.hello["user"]
        self._ws = ws
        self._connected.set()
        self._reader = asyncio.create_task(self._read(ws), name=f"{self.client_name} @{self.username}")

    async def _drop_socket(self, reason: str) -> None:
        """Close the socket and stop reading it; requests still waiting fail with ``ConnectionError(reason)``."""
        ws, self._ws = self._ws, None
        self._connected.clear()
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._fail_waiting(ConnectionError(reason))

    async def close(self) -> None:
        """Close the socket (pending requests fail), cancel the background tasks, revoke a token this client minted."""
        self._closing = True
        await self._drop_socket("the client closed")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            if self._minted_token_id is not None:
                with contextlib.suppress(httpx.HTTPError):
                    await self._http.delete(f"/api/auth/tokens/{self._minted_token_id}")
                self._minted_token_id = None
            await self._http.aclose()
            self._http = None

    # Talking to the server ----------------------------------------------------------------

    async def api(self, method: str, path: str, json_body: Any = None) -> Any:
        """A JSON API request as this user: the decoded body; :attr:`error_type` with the error's code when refused."""
        if self._http is None:
            raise RuntimeError("connect() first")
        return self._json_or_raise(await self._http.request(method, path, json=json_body))

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message on the socket as it is: no ``id`` added, no answer awaited.

        Raises ``RuntimeError`` before :meth:`connect` or after :meth:`close`,
        as :meth:`api` does, and ``ConnectionError`` when the socket dropped.
        """
        if self._ws is None:
            if self._closing or not self.hello:
                raise RuntimeError("connect() first")
            raise ConnectionError("the socket closed")
        await self._ws.send(json.dumps(message))

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` with a fresh ``id`` and return the answer whose ``ref`` is that id.

        Raises :attr:`error_type` when the answer is an ``error``,
        ``TimeoutError`` after :attr:`request_timeout`, ``ConnectionError``
        when the socket closes first.
        """
        return await self._answer_to(await self._send_request(message))

    async def _send_request(self, message: dict[str, Any]) -> tuple[str, asyncio.Future[dict[str, Any]]]:
        """The first half of :meth:`request`: send with a fresh ``id``; that id and the future of its answer.

        For a request whose answer need not be awaited before going on (see :meth:`_answer_to`).
        """
        request_id = f"r{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future  # before sending: the answer may come before send() returns
        try:
            await self.send({**message, "id": request_id})
        except BaseException:
            self._waiting.pop(request_id, None)
            raise
        return request_id, future

    async def _answer_to(self, sent: tuple[str, asyncio.Future[dict[str, Any]]]) -> dict[str, Any]:
        """The second half of :meth:`request`: await the answer to what :meth:`_send_request` sent."""
        request_id, future = sent
        try:
            async with asyncio.timeout(self.request_timeout):
                answer = await future
        finally:
            self._waiting.pop(request_id, None)
        if answer.get("type") == "error":
            details = {k: v for k, v in answer.items() if k not in ("type", "ref", "code", "message")}
            raise self.error_type(answer.get("code", "error"), answer.get("message", ""), details)
        return answer

    def _json_or_raise(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            return body
        error = body.get("error", {}) if isinstance(body, dict) else {}
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        raise self.error_type(error.get("code", f"http_{response.status_code}"), error.get("message", response.text[:200]), details)

    # Reading the socket -------------------------------------------------------------------

    def handle(self, message: dict[str, Any]) -> None:
        """A message that answers none of our requests (an event, or an error nobody waits for).

        Called on the reader task, in arrival order. By default an
        ``error`` is logged and anything else ignored; a subclass handles
        its plugin's events and passes the rest here.
        """
        if message.get("type") == "error":
            log.warning("%s @%s: error from the server: %s", self.client_name, self.username, message)

    def socket_closed(self, ws: ClientConnection) -> None:
        """The server closed the socket, or it dropped (not called when we close it). Logged by default.

        Requests still waiting have failed already. A subclass may
        reconnect (a background task calling :meth:`_open_socket`); the
        close codes after which that cannot help are in docs/realtime.md.
        """
        log.warning("%s @%s: socket closed (%s %s)", self.client_name, self.username, ws.close_code, ws.close_reason)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    self._dispatch(json.loads(raw))
                except Exception:
                    # A message we fail to handle costs only itself: the socket keeps being read.
                    log.exception("%s @%s: handling a message failed", self.client_name, self.username)
        except ConnectionClosed:
            pass
        if self._closing or self._ws is not ws:
            return  # we closed or replaced it
        self._ws = None
        self._connected.clear()
        self._fail_waiting(ConnectionError(f"the socket closed ({ws.close_code} {ws.close_reason})"))
        self.socket_closed(ws)

    def _dispatch(self, message: dict[str, Any]) -> None:
        ref = message.get("ref")
        future = self._waiting.pop(str(ref), None) if ref is not None else None
        if future is None:
            self.handle(message)
        elif not future.done():
            future.set_result(message)

    def _fail_waiting(self, error: Exception) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(error)

    # Work of its own ----------------------------------------------------------------------

    def _background(self, work: Awaitable[Any]) -> None:
        """Run ``work`` as long as the client lives: cancelled by :meth:`close`, a failure logged."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s @%s: background task failed", self.client_name, self.username, exc_info=task.exception())
