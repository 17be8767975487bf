"""The switchboard: places, rings, connects and ends calls, and tells both parties.

The call record in the database is the truth about a call; every change of
state is a conditional update that exactly one contender wins (records.py).
What lives here, per process, is only what cannot be stored: the timers
(ring timeout, reconnect grace, the echo test's limit) and the echo peers.
Messages go through the kernel's realtime service: to the one connection a
call is bound to (``send_to_connection``), or, while it rings, to every
connection of the callee.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread

from kernel import ApiError, Connection, User, utcnow
from plugins.calls.echo import EchoPeers
from plugins.calls.records import ANSWERED, MISSED_REASONS, RINGING, Call, Records, call_json
from plugins.calls.screening import ECHO, Screening
from plugins.calls.settings import CallsSettings

if TYPE_CHECKING:
    from kernel import Kernel

logger = logging.getLogger("everything.calls")

T = TypeVar("T")

# Stale rings (their timer died with its process) are swept this often.
SWEEP_SECONDS = 30.0

HANGUP_REASONS = ("hangup", "ice_failed", "media_failed")


def unknown_call() -> ApiError:
    # The same answer for a call that does not exist and for someone else's: ids reveal nothing.
    return ApiError(404, "unknown_call", "No such call of yours.")


class Switchboard:
    """Live calls of one kernel: the realtime handlers call its methods."""

    def __init__(self, kernel: Kernel, settings: CallsSettings, screening: Screening, records: Records) -> None:
        self.kernel = kernel
        self.settings = settings
        self.screening = screening
        self.records = records
        self.echo = EchoPeers(settings, on_ended=self._echo_ended)
        self.echo_user: User | None = None
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._grace: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # Lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self.echo_user = await _run(self._echo_account)
        self._sweeper = asyncio.create_task(self._sweep(), name="calls-sweeper")

    async def stop(self, reason: str) -> None:
        """End the calls this process holds (``reason``: ``plugin_disabled`` or ``disconnected``) and stop every timer."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in [*self._timers.values(), *self._grace.values()]:
            task.cancel()
        self._timers.clear()
        self._grace.clear()
        prefix = f"{self.kernel.realtime.process_key}."
        live = await _run(self.records.live_calls_everywhere)
        for call in live:
            mine = any((key or "").startswith(prefix) for key in (call.caller_connection, call.callee_connection))
            if mine:
                ended = await _run(self.records.end, call.call_id, reason)
                if ended is not None:
                    await self._tell_ended(ended)
        await self.echo.close_all()

    def _echo_account(self) -> User:
        """The reserved ``echo`` account, made on first start; it has no password and cannot log in."""
        found = self.kernel.user(ECHO)
        if found is not None:
            return found
        try:
            return self.kernel.identity.create_user(ECHO, "!", "Echo test")
        except ApiError:  # another process made it first
            found = self.kernel.user(ECHO)
            assert found is not None
            return found

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                moment = utcnow() - timedelta(seconds=self.settings.ring_timeout_seconds + SWEEP_SECONDS)
                for call in await _run(self.records.ringing_before, moment):
                    await self._end(call.call_id, "timeout", only=RINGING)
            except Exception:
                logger.exception("sweeping stale calls failed")

    # Placing a call -------------------------------------------------------------------

    async def invite(self, connection: Connection, call_id: str, to: str, media: str, sdp: str) -> dict[str, Any]:
        caller = connection.user
        callee = await _run(self.kernel.user, to)
        verdict = await _run(self.screening.verdict, caller, callee, media)
        if not verdict.allowed:
            raise verdict.error()
        assert callee is not None
        for call in await _run(self.records.live_calls, caller.id):
            if not (call.caller_id == callee.id and call.callee_id == caller.id and call.state == RINGING):
                raise ApiError(409, "in_call", "You are already in a call; hang up first.")
        call = await _run(self.records.create, call_id, caller.id, callee.id, media, connection.key, sdp)
        if self.echo_user is not None and callee.id == self.echo_user.id:
            return await self._connect_echo(connection, call, sdp)
        reason = await self._arbitrate(call)
        if reason is None and not await self.kernel.realtime.is_online_anywhere(callee):
            reason = "unavailable"
        if reason is not None:
            ended = await _run(self.records.end, call.call_id, reason, only=RINGING)
            call = ended or call
            self._after_reply(self._tell_ended(call))
            return {"call": call_json(self.kernel, call, caller.id)}
        self._timers[call.call_id] = asyncio.create_task(self._ring_timeout(call.call_id))
        self._after_reply(self.kernel.realtime.send_to_user(callee, self._incoming(call, caller)))
        return {"call": call_json(self.kernel, call, caller.id)}

    async def _arbitrate(self, call: Call) -> str | None:
        """Why this new call must end at once (``busy``, ``glare``), or None; a glare loser of the other side is ended here.

        Runs after the call is stored, so that two invites racing each other
        (in any process) both see both calls and decide the same way.
        """
        others = [other for other in await _run(self.records.live_calls, call.callee_id) if other.call_id != call.call_id]
        glare = [o for o in others if o.caller_id == call.callee_id and o.callee_id == call.caller_id and o.state == RINGING]
        busy = [o for o in others if o not in glare and (o.state == ANSWERED or o.id < call.id)]
        if busy:
            return "busy"
        for other in glare:
            if call.call_id < other.call_id:
                await self._end(other.call_id, "glare", only=RINGING)
            else:
                return "glare"
        return None

    def _incoming(self, call: Call, caller: User) -> dict[str, Any]:
        remaining = self.settings.ring_timeout_seconds - (utcnow() - call.invited_at).total_seconds()
        return {
            "type": "calls.incoming",
            "call_id": call.call_id,
            "caller": self.kernel.user_json(caller),
            "media": call.media,
            "sdp": call.offer,
            "lifetime_ms": max(0, round(remaining * 1000)),
        }

    async def _ring_timeout(self, call_id: str) -> None:
        await asyncio.sleep(self.settings.ring_timeout_seconds)
        self._timers.pop(call_id, None)
        await self._end(call_id, "timeout", only=RINGING)

    async def _connect_echo(self, connection: Connection, call: Call, sdp: str) -> dict[str, Any]:
        try:
            answer = await self.echo.answer(call.call_id, sdp)
        except Exception as exc:
            await _run(self.records.end, call.call_id, "media_failed")
            raise ApiError(422, "invalid_sdp", f"sdp: the echo test could not use this offer ({exc.__class__.__name__}).") from None
        answered = await _run(self.records.answer, call.call_id, "echo")
        assert answered is not None
        self._timers[call.call_id] = asyncio.create_task(self._echo_limit(call.call_id))
        message = {"type": "calls.answered", "call_id": call.call_id, "sdp": answer}
        self._after_reply(self.kernel.realtime.send_to_connection(connection.key, message))
        return {"call": call_json(self.kernel, answered, connection.user.id)}

    async def _echo_limit(self, call_id: str) -> None:
        await asyncio.sleep(self.settings.echo_max_seconds)
        self._timers.pop(call_id, None)
        await self._end(call_id, "hangup")

    async def _echo_ended(self, call_id: str, reason: str) -> None:
        await self._end(call_id, reason if reason in HANGUP_REASONS else "media_failed")

    # The callee's side ---------------------------------------------------------------

    async def ringing(self, connection: Connection, call_id: str) -> None:
        call = await self._own_call(connection, call_id, side="callee")
        if call.state != RINGING:
            raise ApiError(409, "not_ringing", "The call is no longer ringing.")
        await self._send(call.caller_connection, {"type": "calls.ringing", "call_id": call_id})

    async def answer(self, connection: Connection, call_id: str, sdp: str) -> dict[str, Any]:
        await self._own_call(connection, call_id, side="callee")
        answered = await _run(self.records.answer, call_id, connection.key)
        if answered is None:
            now = await _run(self.records.get, call_id)
            if now is not None and now.state == ANSWERED:
                raise ApiError(409, "already_answered", "The call was answered on another of your devices.")
            raise ApiError(409, "call_ended", "The call is over.")
        self._cancel_timer(call_id)
        await self._send(answered.caller_connection, {"type": "calls.answered", "call_id": call_id, "sdp": sdp})
        ended_here = {"type": "calls.ended", "call_id": call_id, "reason": "answered_elsewhere", "by": None}
        await self.kernel.realtime.send_to_user(answered.callee_id, ended_here, except_connection=connection.key)
        return {"call": call_json(self.kernel, answered, connection.user.id)}

    async def reject(self, connection: Connection, call_id: str) -> None:
        await self._own_call(connection, call_id, side="callee")
        if await self._end(call_id, "rejected", connection.user.id, only=RINGING) is None:
            raise ApiError(409, "not_ringing", "The call is no longer ringing.")

    # Either side -------------------------------------------------------------------------

    async def candidate(self, connection: Connection, call_id: str, candidate: dict[str, Any] | None) -> None:
        call = await self._own_call(connection, call_id)
        side = call.side_of(connection.user.id)
        message = {"type": "calls.candidate", "call_id": call_id, "candidate": candidate}
        if side == "caller":
            self._require_bound(call, "caller", connection)
            if call.callee_connection == "echo":
                await self.echo.add_candidate(call_id, candidate)
            elif call.state == RINGING:
                await self.kernel.realtime.send_to_user(call.callee_id, message)
            else:
                await self._send(call.callee_connection, message)
        else:
            self._require_bound(call, "callee", connection)
            await self._send(call.caller_connection, message)

    async def renegotiate(self, connection: Connection, call_id: str, sdp: str, sdp_type: str) -> None:
        call = await self._own_call(connection, call_id)
        if call.state != ANSWERED:
            raise ApiError(409, "not_your_turn", "A call can be renegotiated once it is answered.")
        side = call.side_of(connection.user.id)
        assert side is not None
        self._require_bound(call, side, connection)
        if call.callee_connection == "echo":
            raise ApiError(409, "not_your_turn", "The echo test cannot renegotiate; call it again with video.")
        other = call.callee_connection if side == "caller" else call.caller_connection
        await self._send(other, {"type": "calls.renegotiate", "call_id": call_id, "sdp": sdp, "sdp_type": sdp_type})

    async def hangup(self, connection: Connection, call_id: str, reason: str) -> None:
        call = await self._own_call(connection, call_id)
        side = call.side_of(connection.user.id)
        if call.state == RINGING:
            # Before an answer, the caller cancels and the callee declines.
            reason, only = ("cancelled", RINGING) if side == "caller" else ("rejected", RINGING)
        else:
            assert side is not None
            self._require_bound(call, side, connection)
            only = ANSWERED
        if await self._end(call_id, reason, connection.user.id, only=only) is None:
            raise ApiError(409, "call_ended", "The call is over.")

    async def resume(self, connection: Connection, call_id: str) -> dict[str, Any]:
        call = await self._own_call(connection, call_id)
        side = call.side_of(connection.user.id)
        assert side is not None
        if side == "caller" or call.state == ANSWERED:
            rebound = await _run(self.records.bind, call_id, side, connection.key)
            if rebound is None:
                raise ApiError(409, "call_ended", "The call is over.")
            call = rebound
            grace = self._grace.pop((call_id, side), None)
            if grace is not None:
                grace.cancel()
        return {"call": call_json(self.kernel, call, connection.user.id)}

    # Connections coming and going ----------------------------------------------------------

    async def connected(self, connection: Connection) -> None:
        """A new tab of someone being called rings too."""
        for call in await _run(self.records.live_calls, connection.user.id):
            if call.state == RINGING and call.callee_id == connection.user.id:
                caller = await _run(self.kernel.user_by_id, call.caller_id)
                if caller is not None:
                    connection.send(self._incoming(call, caller))

    async def disconnected(self, connection: Connection) -> None:
        """A party's socket dropped: the call waits ``reconnect_grace_seconds`` for a ``calls.resume``."""
        for call in await _run(self.records.bound_to, connection.key):
            side = "caller" if call.caller_connection == connection.key else "callee"
            key = (call.call_id, side)
            if key not in self._grace:
                self._grace[key] = asyncio.create_task(self._after_grace(call.call_id, side, connection))

    async def _after_grace(self, call_id: str, side: str, connection: Connection) -> None:
        await asyncio.sleep(self.settings.reconnect_grace_seconds)
        self._grace.pop((call_id, side), None)
        call = await _run(self.records.get, call_id)
        if call is not None and call.live and getattr(call, f"{side}_connection") == connection.key:
            await self._end(call_id, "disconnected", connection.user.id)

    # Ending ----------------------------------------------------------------------------------

    async def _end(self, call_id: str, reason: str, by_id: int | None = None, *, only: str | None = None) -> Call | None:
        ended = await _run(self.records.end, call_id, reason, by_id, only=only)
        if ended is not None:
            await self._tell_ended(ended)
        return ended

    async def _tell_ended(self, call: Call) -> None:
        """Tell both parties, stop the call's timers and peer, and note a missed call."""
        self._cancel_timer(call.call_id)
        for side in ("caller", "callee"):
            grace = self._grace.pop((call.call_id, side), None)
            if grace is not None:
                grace.cancel()
        by = await _run(self.kernel.user_by_id, call.ended_by_id) if call.ended_by_id else None
        message = {"type": "calls.ended", "call_id": call.call_id, "reason": call.end_reason, "by": by.username if by else None}
        await self._send(call.caller_connection, message)
        if call.callee_connection == "echo":
            await self.echo.close(call.call_id)
        elif call.callee_connection is not None:
            await self._send(call.callee_connection, message)
        else:
            await self.kernel.realtime.send_to_user(call.callee_id, message)
        if call.answered_at is None and call.end_reason in MISSED_REASONS:
            caller = await _run(self.kernel.user_by_id, call.caller_id)
            if caller is not None:
                kind = "video call" if call.media == "video" else "call"
                text = f"Missed {kind} from {caller.display_name or caller.username} (@{caller.username})"
                await self.kernel.notifications.notify(call.callee_id, "calls.missed", text, url="/calls/", actor=caller)

    # Helpers -----------------------------------------------------------------------------------

    async def _own_call(self, connection: Connection, call_id: str, side: str | None = None) -> Call:
        """The live call ``call_id`` when the sender is a party to it (on ``side``, when given)."""
        call = await _run(self.records.get, call_id)
        if call is None or call.side_of(connection.user.id) is None:
            raise unknown_call()
        if side is not None and call.side_of(connection.user.id) != side:
            raise ApiError(409, "not_your_turn", f"Only the {side} may send this.")
        if not call.live:
            raise ApiError(409, "call_ended", "The call is over.")
        return call

    @staticmethod
    def _require_bound(call: Call, side: str, connection: Connection) -> None:
        if getattr(call, f"{side}_connection") != connection.key:
            raise ApiError(409, "not_your_turn", "This call is in progress on another of your connections.")

    async def _send(self, connection_key: str | None, message: dict[str, Any]) -> None:
        if connection_key and connection_key != "echo":
            await self.kernel.realtime.send_to_connection(connection_key, message)

    def _cancel_timer(self, call_id: str) -> None:
        timer = self._timers.pop(call_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    def _after_reply(self, work: Awaitable[None]) -> None:
        """Run ``work`` once the handler's reply is queued: the reply comes first on the sender's socket."""

        async def later() -> None:
            await asyncio.sleep(0)
            try:
                await work
            except Exception:
                logger.exception("telling the parties of a call failed")

        self.kernel.realtime.spawn(later())


async def _run(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Blocking work (database reads and writes) off the event loop."""
    return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
