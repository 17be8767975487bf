"""The switchboard: places, rings, connects and ends calls, and tells both parties.

The call record in the database is the truth about a call; every change of
state is a conditional update that exactly one contender wins (records.py).
That includes each side's reconnect deadline: a side whose socket drops gets
one in the row, ``calls.resume`` from any process lifts it, and every
process's sweep ends a call whose deadline passed — so a drop, a restart or
a crashed process costs a call nothing as long as its party comes back in
time. What lives here, per process, is only what cannot be stored: timers
that end calls on time where this process knows the moment (its rings, its
sockets' deadlines, the echo test's limit) and the echo peers.
Messages go through the kernel's realtime service: to the one connection a
call is bound to (``send_to_connection``), or, while it rings, to every
connection of the callee.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

import anyio.to_thread

from kernel import ApiError, Connection, User, utcnow
from plugins.calls.echo import EchoPeers
from plugins.calls.records import ANSWERED, MISSED_REASONS, RINGING, SIDES, Call, Records, call_json
from plugins.calls.screening import ECHO, Screening
from plugins.calls.settings import CallsSettings

if TYPE_CHECKING:
    from kernel import Kernel

logger = logging.getLogger("everything.calls")

T = TypeVar("T")

# The messages a handler puts off until its reply is queued (None outside a handler).
_put_off: ContextVar[list[Awaitable[None]] | None] = ContextVar("calls_put_off", default=None)

HangupReason = Literal["hangup", "ice_failed", "media_failed"]
HANGUP_REASONS: tuple[HangupReason, ...] = get_args(HangupReason)
# Calls that end before the callee's tabs heard of them: only the caller is told.
NEVER_RANG = frozenset({"busy", "unavailable", "failed"})
# What the callee_connection column holds for a call the echo peer answered.
ECHO_PEER = "echo"


def unknown_call() -> ApiError:
    # The same answer for a call that does not exist and for someone else's: ids reveal nothing.
    return ApiError(404, "unknown_call", "No such call of yours.")


def call_ended() -> ApiError:
    return ApiError(409, "call_ended", "The call is over.")


def not_ringing() -> ApiError:
    return ApiError(409, "not_ringing", "The call is no longer ringing.")


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
        # Ends a call at a side's deadline, where this process set it; the sweep is the fallback.
        self._grace: dict[tuple[str, str], asyncio.Task[None]] = {}
        # (call id, side, connection key) -> when (monotonic) a sweep first found that socket's presence missing.
        self._missing: dict[tuple[str, str, str], float] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # Lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self.echo_user = await _run(self.kernel.bot_account, ECHO, "Echo test")
        # The first sweep runs at once: calls left by a process that stopped or died (this one's
        # previous run, too) get their deadlines (across processes, once a later sweep confirms
        # the sockets gone), and their parties the grace to resume here.
        self._sweeper = asyncio.create_task(self._sweep(), name="calls-sweeper")

    async def stop(self, reason: str) -> None:
        """Stop every timer, and leave the calls bound to this process's sockets to be resumed elsewhere.

        ``reason`` ``disconnected`` (the process stops: a deploy, a restart)
        ends no answered call — its media is peer to peer — but gives each of
        its sides here a grace deadline, if their sockets' closing has not
        already; the parties resume on another process or this one's
        successor, and the sweep there ends what is not resumed in time.
        ``plugin_disabled`` (the operator switched calls off) ends them.
        The echo test's calls end either way: their peer lives here.
        """
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in [*self._timers.values(), *self._grace.values()]:
            task.cancel()
        self._timers.clear()
        self._grace.clear()
        prefix = f"{self.kernel.realtime.process_key}."
        for call in await _run(self.records.live_calls_everywhere):
            sides = [side for side in SIDES if (getattr(call, f"{side}_connection") or "").startswith(prefix)]
            if not sides and call.call_id not in self.echo:
                continue
            try:
                if reason != "disconnected" or call.call_id in self.echo:
                    await self._end(call.call_id, reason)
                else:
                    for side in sides:
                        await self._start_grace(call, side, getattr(call, f"{side}_connection"), timer=False)
            except Exception:
                logger.exception("leaving call %s at shut-down failed", call.call_id)
        await self.echo.close_all()

    async def _sweep(self) -> None:
        """Every ``sweep_seconds``: what no timer of this process covers (see :meth:`sweep`)."""
        while True:
            try:
                await self.sweep()
            except Exception:
                logger.exception("sweeping calls failed")
            await asyncio.sleep(self.settings.sweep_seconds)

    async def sweep(self) -> None:
        """End rings past their timeout and calls past a side's grace deadline; give deadlines to sides whose socket is gone.

        Every process runs it; each ending is a conditional update, so of
        processes sweeping at once exactly one ends a call and tells its
        parties. A side bound to a socket that no process holds any more (its
        process was killed before it could say so) gets its deadline here.

        Across processes, "no process holds it" is read from the presence in
        Redis, which can be missing for a socket that is open: Redis restarted
        (it keeps none) or was away for long, or the socket's first mark is
        still on its way. So a socket counts as gone only once its presence
        has been missing on two sweeps at least a heartbeat apart (every
        process re-marks its sockets each heartbeat, and at once when Redis
        is back); and a side whose socket is open on this very process loses
        any deadline it got all the same, since only a resume would lift it
        and a client that never lost its socket never sends one.
        """
        now = utcnow()
        rung_out = now - timedelta(seconds=self.settings.ring_timeout_seconds)
        hub = self.kernel.realtime
        looked_at: set[tuple[str, str, str]] = set()
        for call in await _run(self.records.live_calls_everywhere):
            if call.state == RINGING and call.invited_at <= rung_out:
                await self._end(call.call_id, "timeout", only=RINGING)
                continue
            for side in SIDES:
                key = getattr(call, f"{side}_connection")
                if key in hub.by_key and getattr(call, f"{side}_grace_until") is not None:
                    call = await self._lift_grace(call, side, key)
            if any(until is not None and until <= now for until in (call.caller_grace_until, call.callee_grace_until)):
                await self._end_expired(call.call_id)
                continue
            for side in SIDES:
                key = getattr(call, f"{side}_connection")
                if key is None or key == ECHO_PEER or getattr(call, f"{side}_grace_until") is not None:
                    continue
                seen = (call.call_id, side, key)
                looked_at.add(seen)
                if await hub.is_connection_open(getattr(call, f"{side}_id"), key):
                    self._missing.pop(seen, None)
                elif not hub.crosses_processes or self._missing_for_a_heartbeat(seen):
                    # One process alone knows its sockets for sure: no second look needed.
                    self._missing.pop(seen, None)
                    await self._start_grace(call, side, key)
        for seen in self._missing.keys() - looked_at:
            del self._missing[seen]  # ended, resumed elsewhere or given a deadline meanwhile

    def _missing_for_a_heartbeat(self, seen: tuple[str, str, str]) -> bool:
        """Note that a side's socket has no presence now; True once it had none on an earlier sweep, a heartbeat ago or more."""
        now = time.monotonic()
        since = self._missing.setdefault(seen, now)
        return now - since >= self.kernel.realtime.settings.heartbeat_seconds

    async def _lift_grace(self, call: Call, side: str, connection_key: str) -> Call:
        """Lift the deadline of ``side``, whose socket ``connection_key`` is open on this process; the call as it now stands."""
        lifted = await _run(self.records.lift_grace, call.call_id, side, connection_key)
        if lifted is None:
            return call  # resumed elsewhere or ended meanwhile: the row has moved on, and the conditional updates know it
        timer = self._grace.pop((call.call_id, side), None)
        if timer is not None:
            timer.cancel()
        if connection_key not in self.kernel.realtime.by_key:
            # The socket closed while the deadline was being lifted: its closing found a deadline already
            # set and gave none, so give it one now.
            await self._start_grace(lifted, side, connection_key)
        return lifted

    async def _start_grace(self, call: Call, side: str, connection_key: str, *, timer: bool = True) -> None:
        """Give ``side`` of ``call`` ``reconnect_grace_seconds`` to resume, unless it has moved on or has a deadline already.

        ``timer``: also end the call here at the deadline, to the moment (the sweep would, a little later).
        """
        until = utcnow() + timedelta(seconds=self.settings.reconnect_grace_seconds)
        if await _run(self.records.start_grace, call.call_id, side, connection_key, until) is None:
            return
        if timer and (call.call_id, side) not in self._grace:
            self._grace[(call.call_id, side)] = self._task(self._expire_at(call.call_id, side, until))

    async def _expire_at(self, call_id: str, side: str, until: datetime) -> None:
        # A hair past the deadline: the loop's clock and the wall clock may disagree by a tick.
        await asyncio.sleep((until - utcnow()).total_seconds() + 0.01)
        self._grace.pop((call_id, side), None)
        await self._end_expired(call_id)

    async def _end_expired(self, call_id: str) -> Call | None:
        """End the call as ``disconnected`` if a side's deadline has passed, and tell the parties."""
        ended = await _run(self.records.end_expired, call_id, utcnow())
        if ended is not None:
            await self._tell_ended(ended)
        return ended

    # Placing a call -------------------------------------------------------------------

    async def invite(self, connection: Connection, call_id: str, to: str, media: str, sdp: str) -> dict[str, Any]:
        """Place a call: screen it, store it, then ring the callee or end it at once (busy, unavailable, glare)."""
        caller = connection.user
        callee = await _run(self.kernel.user, to)
        verdict = await _run(self.screening.verdict, caller, callee, media)
        if not verdict.allowed:
            raise verdict.error()
        assert callee is not None
        for call in await _run(self.records.live_calls, caller.id):
            if not (call.caller_id == callee.id and call.callee_id == caller.id and call.state == RINGING):
                message = "You are already in a call, or placing one; hang it up first."
                raise ApiError(409, "in_call", message, call_id=call.call_id)
        call = await _run(self.records.create, call_id, caller.id, callee.id, media, connection.key, sdp)
        try:
            if self.echo_user is not None and callee.id == self.echo_user.id:
                return await self._connect_echo(connection, call, sdp)
            return await self._ring(connection, call, caller, callee)
        except BaseException:
            # Nothing half-done: a call that could not be placed does not stay ringing.
            await _run(self.records.end, call.call_id, "failed")
            raise

    async def _ring(self, connection: Connection, call: Call, caller: User, callee: User) -> dict[str, Any]:
        reason = await self._arbitrate(call)
        if reason is None and not await self.kernel.realtime.is_online_anywhere(callee):
            reason = "unavailable"
        if reason is not None:
            ended = await _run(self.records.end, call.call_id, reason, only=RINGING)
            if ended is not None:
                self._after_reply(self._tell_ended(ended))
            # else the other side of a glare race ended it first, and told both.
            call = ended or await _run(self.records.get, call.call_id) or call
            return {"call": await _run(call_json, self.kernel, call, caller.id)}
        self._start_timer(call.call_id, self._ring_timeout(call.call_id))
        incoming = await _run(self._incoming, call, caller)
        self._after_reply(self.kernel.realtime.send_to_user(callee, incoming))
        return {"call": await _run(call_json, self.kernel, call, caller.id)}

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
                await self._end(other.call_id, "glare", only=RINGING, after_reply=True)
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
        except ValueError as exc:
            await _run(self.records.end, call.call_id, "media_failed")
            raise ApiError(422, "invalid_sdp", f"sdp: the echo test cannot use this offer: {exc}", field="sdp") from None
        answered = await _run(self.records.answer, call.call_id, ECHO_PEER, answer)
        if answered is None:  # the caller hung up meanwhile
            await self.echo.close(call.call_id)
            raise call_ended()
        self._start_timer(call.call_id, self._echo_limit(call.call_id))
        message = {"type": "calls.answered", "call_id": call.call_id, "sdp": answer}
        self._after_reply(self.kernel.realtime.send_to_connection(connection.key, message))
        return {"call": await _run(call_json, self.kernel, answered, connection.user.id)}

    async def _echo_limit(self, call_id: str) -> None:
        await asyncio.sleep(self.settings.echo_max_seconds)
        self._timers.pop(call_id, None)
        await self._end(call_id, "hangup")

    async def _echo_ended(self, call_id: str, reason: str) -> None:
        await self._end(call_id, reason if reason in HANGUP_REASONS else "media_failed")

    # The callee's side ---------------------------------------------------------------

    async def ringing(self, connection: Connection, call_id: str) -> None:
        """A callee's device rings: tell the caller."""
        call = await self._own_call(connection, call_id, side="callee")
        if call.state != RINGING:
            raise not_ringing()
        await self._send(call.caller_connection, {"type": "calls.ringing", "call_id": call_id})

    async def answer(self, connection: Connection, call_id: str, sdp: str) -> dict[str, Any]:
        """The first answer wins and binds the call to its connection; the callee's other tabs stop ringing."""
        await self._own_call(connection, call_id, side="callee")
        answered = await _run(self.records.answer, call_id, connection.key, sdp)
        if answered is None:
            now = await _run(self.records.get, call_id)
            if now is not None and now.state == ANSWERED:
                raise ApiError(409, "already_answered", "The call was answered on another of your devices.")
            raise call_ended()
        self._cancel_timer(call_id)
        await self._send(answered.caller_connection, {"type": "calls.answered", "call_id": call_id, "sdp": sdp})
        ended_here = {"type": "calls.ended", "call_id": call_id, "reason": "answered_elsewhere", "by": None}
        await self.kernel.realtime.send_to_user(answered.callee_id, ended_here, except_connection=connection.key)
        return {"call": await _run(call_json, self.kernel, answered, connection.user.id)}

    async def reject(self, connection: Connection, call_id: str) -> None:
        """The callee declines: the call ends as ``rejected`` for everyone."""
        await self._own_call(connection, call_id, side="callee")
        if await self._end(call_id, "rejected", connection.user.id, only=RINGING, after_reply=True) is None:
            raise not_ringing()

    # Either side -------------------------------------------------------------------------

    async def candidate(self, connection: Connection, call_id: str, candidate: dict[str, Any] | None) -> None:
        """Pass an ICE candidate to the other party: every ringing tab of the callee, or the bound connection."""
        call = await self._own_call(connection, call_id)
        side = call.side_of(connection.user.id)
        message = {"type": "calls.candidate", "call_id": call_id, "candidate": candidate}
        if side == "caller":
            self._require_bound(call, "caller", connection)
            if call.callee_connection == ECHO_PEER:
                await self.echo.add_candidate(call_id, candidate)
            elif call.state == RINGING:
                await self.kernel.realtime.send_to_user(call.callee_id, message)
            else:
                await self._send(call.callee_connection, message)
        else:
            self._require_bound(call, "callee", connection)
            await self._send(call.caller_connection, message)

    async def renegotiate(self, connection: Connection, call_id: str, sdp: str, sdp_type: str) -> None:
        """Pass a new offer or answer (video turned on, an ICE restart) to the other party of an answered call."""
        call = await self._own_call(connection, call_id)
        if call.state != ANSWERED:
            raise ApiError(409, "not_your_turn", "A call can be renegotiated once it is answered.")
        side = call.side_of(connection.user.id)
        assert side is not None
        self._require_bound(call, side, connection)
        if call.callee_connection == ECHO_PEER:
            raise ApiError(409, "not_your_turn", "The echo test cannot renegotiate; call it again with video.")
        other = call.callee_connection if side == "caller" else call.caller_connection
        await self._send(other, {"type": "calls.renegotiate", "call_id": call_id, "sdp": sdp, "sdp_type": sdp_type})

    async def hangup(self, connection: Connection, call_id: str, reason: str) -> None:
        """End a call: before an answer the caller cancels and the callee declines; after it, either hangs up."""
        call = await self._own_call(connection, call_id)
        side = call.side_of(connection.user.id)
        assert side is not None
        if call.state == RINGING:
            ringing_reason = "cancelled" if side == "caller" else "rejected"
            if await self._end(call_id, ringing_reason, connection.user.id, only=RINGING, after_reply=True) is not None:
                return
            call = await self._own_call(connection, call_id)  # answered meanwhile: hang up the answered call
        bound = getattr(call, f"{side}_connection")
        # Another tab of the party may hang up once the bound one is gone for good (a crashed tab, a lost process).
        if bound != connection.key and await self.kernel.realtime.is_connection_open(connection.user.id, bound or ""):
            self._require_bound(call, side, connection)
        if await self._end(call_id, reason, connection.user.id, only=ANSWERED, after_reply=True) is None:
            raise call_ended()

    async def resume(self, connection: Connection, call_id: str) -> dict[str, Any]:
        """Bind a call to this new connection after a reconnect; a caller gets the answer again if it was missed."""
        call = await self._own_call(connection, call_id)
        side = call.side_of(connection.user.id)
        assert side is not None
        if call.callee_connection == ECHO_PEER and call_id not in self.echo:
            # The echo peer lived in a process that is gone (the caller resumes elsewhere): nothing to resume.
            await self._end(call_id, "disconnected")
            raise call_ended()
        if side == "caller" or call.state == ANSWERED:
            rebound = await _run(self.records.bind, call_id, side, connection.key, utcnow())
            if rebound is None:
                await self._end_expired(call_id)  # too late: end it now rather than at the next sweep
                raise call_ended()
            call = rebound
            grace = self._grace.pop((call_id, side), None)
            if grace is not None:
                grace.cancel()
        reply: dict[str, Any] = {"call": await _run(call_json, self.kernel, call, connection.user.id)}
        if side == "caller" and call.state == ANSWERED:
            reply["sdp"] = call.answer
        return reply

    # Connections coming and going ----------------------------------------------------------

    async def connected(self, connection: Connection) -> None:
        """A new tab of someone being called rings too."""
        for call in await _run(self.records.live_calls, connection.user.id):
            if call.state == RINGING and call.callee_id == connection.user.id:
                caller = await _run(self.kernel.user_by_id, call.caller_id)
                if caller is not None:
                    connection.send(await _run(self._incoming, call, caller))

    async def disconnected(self, connection: Connection) -> None:
        """A party's socket dropped: the call waits ``reconnect_grace_seconds`` for a ``calls.resume``, from any process.

        While this process stops, its timers are not started: the sweep of the
        process the party resumes on (or of any other) ends the call if it does not.
        """
        stopping = self._sweeper is None or self._sweeper.done()
        for call in await _run(self.records.bound_to, connection.key):
            for side in SIDES:
                if getattr(call, f"{side}_connection") == connection.key:
                    await self._start_grace(call, side, connection.key, timer=not stopping)

    # Ending ----------------------------------------------------------------------------------

    async def _end(
        self, call_id: str, reason: str, by_id: int | None = None, *, only: str | None = None, after_reply: bool = False
    ) -> Call | None:
        """End a live call (in state ``only``, when given) and tell the parties; None when it had left that state.

        ``after_reply``: the sender's own reply goes out first, as the protocol promises.
        """
        ended = await _run(self.records.end, call_id, reason, by_id, only=only)
        if ended is not None:
            if after_reply:
                self._after_reply(self._tell_ended(ended))
            else:
                await self._tell_ended(ended)
        return ended

    async def _tell_ended(self, call: Call) -> None:
        """Tell both parties, stop the call's timers and peer, and note a missed call."""
        self._cancel_timer(call.call_id)
        for side in SIDES:
            grace = self._grace.pop((call.call_id, side), None)
            if grace is not None and grace is not asyncio.current_task():
                grace.cancel()
        by = await _run(self.kernel.user_by_id, call.ended_by_id) if call.ended_by_id else None
        message = {"type": "calls.ended", "call_id": call.call_id, "reason": call.end_reason, "by": by.username if by else None}
        await self._send(call.caller_connection, message)
        if call.callee_connection == ECHO_PEER:
            await self.echo.close(call.call_id)
        elif call.callee_connection is not None:
            await self._send(call.callee_connection, message)
        elif call.end_reason not in NEVER_RANG:
            await self.kernel.realtime.send_to_user(call.callee_id, message)
        if call.answered_at is None and call.end_reason in MISSED_REASONS:
            try:
                await self.note_missed(call)
            except Exception:  # the call has ended whatever becomes of the note
                logger.exception("noting missed call %s failed", call.call_id)

    async def note_missed(self, call: Call) -> None:
        """Leave the callee the missed-call notification of ``call`` (live, and for the sandbox's past calls)."""
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
            raise call_ended()
        return call

    @staticmethod
    def _require_bound(call: Call, side: str, connection: Connection) -> None:
        if getattr(call, f"{side}_connection") != connection.key:
            raise ApiError(409, "not_your_turn", "This call is in progress on another of your connections.")

    async def _send(self, connection_key: str | None, message: dict[str, Any]) -> None:
        if connection_key and connection_key != ECHO_PEER:
            await self.kernel.realtime.send_to_connection(connection_key, message)

    def _task(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A timer's task, whose failure is logged rather than lost."""
        # The coroutine is the task itself: cancelled before it ever ran, it is still closed cleanly.
        task = asyncio.ensure_future(work)
        task.add_done_callback(_log_failure)
        return task

    def _start_timer(self, call_id: str, work: Coroutine[Any, Any, None]) -> None:
        self._timers[call_id] = self._task(work)

    def _cancel_timer(self, call_id: str) -> None:
        timer = self._timers.pop(call_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def handle(self, work: Awaitable[T]) -> T:
        """Run a message's handling, then what it put off with :meth:`_after_reply`.

        The kernel queues the reply as soon as the handler returns, before the
        loop runs anything else: work started here, at the very end, comes after it.
        """
        later: list[Awaitable[None]] = []
        token = _put_off.set(later)
        try:
            return await work
        finally:
            _put_off.reset(token)
            for deferred in later:
                self.kernel.realtime.spawn(self._logged(deferred))

    def _after_reply(self, work: Awaitable[None]) -> None:
        """Send ``work``'s messages after the reply to the message being handled (at once outside a handler)."""
        later = _put_off.get()
        if later is None:
            self.kernel.realtime.spawn(self._logged(work))
        else:
            later.append(work)

    @staticmethod
    async def _logged(work: Awaitable[None]) -> None:
        try:
            await work
        except Exception:
            logger.exception("telling the parties of a call failed")


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("a calls timer failed", exc_info=task.exception())


async def _run(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Blocking work (database reads and writes) off the event loop."""
    return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
