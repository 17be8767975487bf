"""The Spaces control plane on one kernel: Spaces, members and every stage change.

:data:`SPACES` holds one :class:`Spaces` per kernel. The rules are
in :mod:`plugins.spaces.stage`; this module loads a Space's members, asks
the rules, stores what they decided, tells the media backend
(:class:`plugins.spaces.media.SpacesMedia`, in :attr:`Spaces.media`) and
sends ``spaces.state`` to everyone in the Space.

Changes to one Space are serialised by a lock per Space, in this process.
Which connection carries which member is kept in memory: a deployment of
several processes must route a Space's members to one process (the media
lives there too).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from sqlalchemy import and_, case, func, insert, or_, select, update

from kernel import ApiError, Connection, Page, PluginState, User, decode_cursor, encode_cursor, inserted_id, iso, utcnow
from plugins.spaces import stage as rules
from plugins.spaces.aiortc_media import AiortcMedia
from plugins.spaces.models import members, spaces
from plugins.spaces.recordings import RecordingLibrary
from plugins.spaces.settings import SpacesSettings
from plugins.spaces.stage import LIVE, ON_STAGE, SCHEDULED, Member, Stage, StageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection as Db

    from kernel import Kernel, StoredFile
    from plugins.spaces.media import SpacesMedia

logger = logging.getLogger("everything.spaces")



def unknown_space() -> ApiError:
    return ApiError(404, "unknown_space", "There is no such Space.")


@dataclass(frozen=True)
class Space:
    """One Space as stored."""

    id: int
    host_id: int
    title: str
    status: str
    created_at: datetime
    starts_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    recording: bool


def _member(row: Any) -> Member:
    return Member(row.user_id, row.role, bool(row.hand_raised), bool(row.muted), bool(row.removed), row.left_at is None)


class Spaces:
    """Spaces, their stages and the realtime connections in them, for one kernel."""

    def __init__(self, kernel: Kernel, settings: SpacesSettings) -> None:
        self.kernel = kernel
        self.settings = settings
        # The embedded media backend; a deployment that outgrows it swaps in an SFU (docs/spaces-scale.md).
        self.media: SpacesMedia = AiortcMedia(
            on_speaking=self.on_speaking, host_addresses=settings.host_addresses or None, on_recorded=self.on_recorded
        )
        folder = kernel.settings.data_dir / settings.recordings_dir
        self.recordings = RecordingLibrary(kernel.db, kernel.media_storage("spaces", folder), folder)
        # Takes being published (stored, perhaps uploaded, and recorded) in the background; close() waits for them.
        self._publishing: set[asyncio.Task[None]] = set()
        # Set by close(): the start-up's publishing of leftover takes begins no further take.
        self._stopping = threading.Event()
        # space id -> user id -> the Connection.key carrying that member.
        self.joined: dict[int, dict[int, str]] = {}
        # Connection.key -> (space id, user id).
        self.by_connection: dict[str, tuple[int, int]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        # space id -> the usernames last reported speaking, for whoever joins next.
        self.speaking: dict[int, list[str]] = {}
        # space id -> the pending state broadcast after listeners came or went.
        self._churn: dict[int, asyncio.Task[None]] = {}

    def lock(self, space_id: int) -> asyncio.Lock:
        return self._locks.setdefault(space_id, asyncio.Lock())

    # Storage (blocking: run off the event loop) -------------------------------------------

    def _get(self, conn: Db, space_id: int) -> Space | None:
        row = conn.execute(select(spaces).where(spaces.c.id == space_id)).first()
        return Space(**row._mapping) if row is not None else None

    def _stage(self, conn: Db, space: Space) -> Stage:
        rows = conn.execute(select(members).where(members.c.space_id == space.id)).all()
        return Stage(space.id, space.host_id, space.status, {row.user_id: _member(row) for row in rows})

    def load(self, space_id: int) -> tuple[Space, Stage]:
        """The Space and its stage; 404 ``unknown_space``."""

        def work(conn: Db) -> tuple[Space, Stage]:
            space = self._get(conn, space_id)
            if space is None:
                raise unknown_space()
            return space, self._stage(conn, space)

        return self.kernel.db.read(work)

    def save(self, space_id: int, member: Member) -> None:
        """Store one member's place (insert or update)."""
        now = utcnow()

        def work(conn: Db) -> None:
            values = {
                "role": member.role,
                "hand_raised": member.hand_raised,
                "muted": member.muted,
                "removed": member.removed,
            }
            where = and_(members.c.space_id == space_id, members.c.user_id == member.user_id)
            old = conn.execute(select(members.c.left_at).where(where)).first()
            if old is None:
                conn.execute(
                    insert(members).values(
                        space_id=space_id,
                        user_id=member.user_id,
                        joined_at=now,
                        left_at=None if member.present else now,
                        **values,
                    )
                )
            elif member.present and old.left_at is not None:
                conn.execute(update(members).where(where).values(joined_at=now, left_at=None, **values))
            elif not member.present and old.left_at is None:
                conn.execute(update(members).where(where).values(left_at=now, **values))
            else:
                conn.execute(update(members).where(where).values(**values))

        self.kernel.db.write(work)

    def set_status(self, space_id: int, status: str) -> Space:
        now = utcnow()

        def work(conn: Db) -> Space:
            values: dict[str, Any] = {"status": status}
            if status == LIVE:
                values["started_at"] = now
            elif status == rules.ENDED:
                values["ended_at"] = now
                values["recording"] = False
                conn.execute(
                    update(members)
                    .where(members.c.space_id == space_id, members.c.left_at.is_(None))
                    .values(left_at=now, hand_raised=False)
                )
            conn.execute(update(spaces).where(spaces.c.id == space_id).values(**values))
            space = self._get(conn, space_id)
            assert space is not None
            return space

        return self.kernel.db.write(work)

    # Spaces through the API ------------------------------------------------------------------

    async def create(self, host: User, title: str, starts_at: datetime | None, record: bool = False) -> dict[str, Any]:
        """A new Space: live at once, or scheduled for ``starts_at`` (future, within the settings' window).

        ``record`` turns recording on from the start (402 ``premium_required`` without ``spaces.record``).
        """
        now = utcnow()
        if record:
            await anyio.to_thread.run_sync(self.kernel.entitlements.require, host, "spaces.record")
        if starts_at is not None:
            if starts_at.tzinfo is not None:
                starts_at = starts_at.astimezone(UTC).replace(tzinfo=None)
            if starts_at <= now:
                raise ApiError(422, "validation_error", "starts_at: must be in the future.", field="starts_at")
            if starts_at > now + timedelta(days=self.settings.max_schedule_days):
                raise ApiError(
                    422,
                    "validation_error",
                    f"starts_at: at most {self.settings.max_schedule_days} days ahead.",
                    field="starts_at",
                )
        status = SCHEDULED if starts_at is not None else LIVE
        values = {
            "host_id": host.id,
            "title": title,
            "status": status,
            "created_at": now,
            "starts_at": starts_at,
            "started_at": now if status == LIVE else None,
            "ended_at": None,
            "recording": record,
        }

        def work(conn: Db) -> Space:
            space_id = inserted_id(conn.execute(insert(spaces).values(**values)))
            space = self._get(conn, space_id)
            assert space is not None
            return space

        space = await anyio.to_thread.run_sync(self.kernel.db.write, work)
        if status == LIVE:
            if record:
                space = await self._record_from_start(space)
            await self._announce(space)
        return await self.space_json(space, Stage(space.id, space.host_id, space.status))

    async def list_live(self, viewer: User, cursor: str | None, limit: int) -> Page:
        """Live Spaces: those hosted by people ``viewer`` follows first, then the rest; newest first within each."""
        after = decode_cursor(cursor, int, int)
        followed = case((spaces.c.host_id.in_(self.kernel.following_query(viewer)), 1), else_=0).label("followed")

        def work(conn: Db) -> list[tuple[Space, Stage, int]]:
            blocked = self.kernel.blocked_ids(viewer)
            query = (
                select(spaces, followed)
                .where(spaces.c.status == LIVE)
                .order_by(followed.desc(), spaces.c.id.desc())
                .limit(limit + 1)
            )
            if blocked:
                query = query.where(spaces.c.host_id.not_in(blocked))
            if after is not None:
                query = query.where(or_(followed < after[0], and_(followed == after[0], spaces.c.id < after[1])))
            found = []
            for row in conn.execute(query).all():
                mapping = dict(row._mapping)
                flag = mapping.pop("followed")
                space = Space(**mapping)
                found.append((space, self._stage(conn, space), flag))
            return found

        rows = await anyio.to_thread.run_sync(self.kernel.db.read, work)
        more = len(rows) > limit
        rows = rows[:limit]
        results = [await self.space_json(space, stage) for space, stage, _ in rows]
        next_cursor = encode_cursor(rows[-1][2], rows[-1][0].id) if more and rows else None
        return Page(results, next_cursor)

    async def upcoming(self, viewer: User, limit: int) -> list[dict[str, Any]]:
        """Scheduled Spaces of ``viewer`` and of the people they follow, soonest first."""

        def work(conn: Db) -> list[Space]:
            blocked = self.kernel.blocked_ids(viewer)
            query = (
                select(spaces)
                .where(
                    spaces.c.status == SCHEDULED,
                    or_(spaces.c.host_id == viewer.id, spaces.c.host_id.in_(self.kernel.following_query(viewer))),
                )
                .order_by(spaces.c.starts_at, spaces.c.id)
                .limit(limit)
            )
            if blocked:
                query = query.where(spaces.c.host_id.not_in(blocked))
            return [Space(**row._mapping) for row in conn.execute(query).all()]

        found = await anyio.to_thread.run_sync(self.kernel.db.read, work)
        return [await self.space_json(space, Stage(space.id, space.host_id, space.status)) for space in found]

    async def get(self, viewer: User, space_id: int) -> dict[str, Any]:
        space, stage = await self._visible(viewer, space_id)
        return await self.space_json(space, stage)

    async def listeners(self, viewer: User, space_id: int, cursor: str | None, limit: int) -> Page:
        """Everyone listening now, by user id: for Spaces whose state names only the first listeners."""
        after = decode_cursor(cursor, int)
        _, stage = await self._visible(viewer, space_id)
        ids = sorted(m.user_id for m in stage.present() if m.role == rules.LISTENER and (after is None or m.user_id > after[0]))
        page, more = ids[:limit], len(ids) > limit
        people = await anyio.to_thread.run_sync(lambda: [self.kernel.user_by_id(i) for i in page])
        found = [person for person in people if person is not None]
        await self.kernel.prepare_users(found)
        results = [{"user": self.kernel.user_json(person), "role": rules.LISTENER, "hand_raised": stage.members[person.id].hand_raised} for person in found]
        return Page(results, encode_cursor(page[-1]) if more and page else None)

    async def recording_file(self, viewer: User, space_id: int, name: str) -> StoredFile:
        """The stored file of one finished take, for anyone who can see the Space; 404 ``unknown_recording``."""
        await self._visible(viewer, space_id)
        stored = await anyio.to_thread.run_sync(self.recordings.find, space_id, name)
        if stored is None:
            raise ApiError(404, "unknown_recording", "This Space has no such recording.")
        return stored

    async def _visible(self, viewer: User, space_id: int) -> tuple[Space, Stage]:
        space, stage = await anyio.to_thread.run_sync(self.load, space_id)
        if await anyio.to_thread.run_sync(self.kernel.is_blocked, viewer, space.host_id):
            raise unknown_space()
        return space, stage

    async def start(self, user: User, space_id: int) -> dict[str, Any]:
        """The host starts a scheduled Space (a live one stays as it is); followers are told."""
        async with self.lock(space_id):
            space, stage = await self._visible(user, space_id)
            rules.check_start(stage, user.id)
            if space.status == SCHEDULED:
                space = await self._go_live(space)
                stage.status = LIVE
        return await self.space_json(space, stage)

    async def end(self, user: User, space_id: int) -> dict[str, Any]:
        """The host ends the Space: everyone is disconnected and told ``spaces.ended``."""
        async with self.lock(space_id):
            space, stage = await self._visible(user, space_id)
            rules.check_end(stage, user.id)
            space = await anyio.to_thread.run_sync(self.set_status, space_id, rules.ENDED)
            keys = self.joined.pop(space_id, {})
            self.speaking.pop(space_id, None)
            self._locks.pop(space_id, None)  # nothing changes an ended Space again; its lock is held here till the end
            churn = self._churn.pop(space_id, None)
            if churn is not None:
                churn.cancel()
            for key in keys.values():
                self.by_connection.pop(key, None)
            try:
                await self.media.end(space_id)
            except Exception:
                logger.exception("the media backend failed to end Space %s", space_id)
            message = {"type": "spaces.ended", "space_id": space_id}
            for key in keys.values():
                await self.kernel.realtime.send_to_connection(key, message)
            _, stage = await anyio.to_thread.run_sync(self.load, space_id)
        return await self.space_json(space, stage)

    async def _go_live(self, space: Space) -> Space:
        """A scheduled Space starts: stored as live, followers told, and recorded if the host asked beforehand."""
        space = await anyio.to_thread.run_sync(self.set_status, space.id, LIVE)
        if space.recording:
            space = await self._record_from_start(space)
        await self._announce(space)
        return space

    async def _record_from_start(self, space: Space) -> Space:
        """Start the recording asked for at creation. Should the host no longer hold the feature, or the
        recording fail to start, the Space goes on unrecorded rather than not at all."""
        host = await anyio.to_thread.run_sync(self.kernel.user_by_id, space.host_id)
        if host is not None and await anyio.to_thread.run_sync(lambda: self.kernel.entitlements.check(host, "spaces.record").allowed):
            try:
                await self._start_recording(space.id)
                return space
            except Exception:
                logger.exception("the recording of Space %s could not start", space.id)
        return await anyio.to_thread.run_sync(self._set_recording, space.id, False)

    def _set_recording(self, space_id: int, on: bool) -> Space:
        def work(conn: Db) -> Space:
            conn.execute(update(spaces).where(spaces.c.id == space_id).values(recording=on))
            found = self._get(conn, space_id)
            assert found is not None
            return found

        return self.kernel.db.write(work)

    async def _start_recording(self, space_id: int) -> None:
        path = await anyio.to_thread.run_sync(self.recordings.new_path, space_id, utcnow())
        await self.media.start_recording(space_id, path)

    async def _announce(self, space: Space) -> None:
        """Tell the host's followers that the Space started."""
        host = await anyio.to_thread.run_sync(self.kernel.user_by_id, space.host_id)
        if host is None:
            return
        followers = await anyio.to_thread.run_sync(self.kernel.follower_ids, host)
        text = f"{host.display_name or host.username} (@{host.username}) started a Space: {space.title}"
        for follower in followers:
            try:
                await self.kernel.notifications.notify(
                    follower, "spaces.started", text, url=f"/spaces/{space.id}", actor=host, data={"space_id": space.id}
                )
            except Exception:
                logger.exception("could not tell user %s that Space %s started", follower, space.id)

    async def space_json(self, space: Space, stage: Stage) -> dict[str, Any]:
        """The Space as the API and ``spaces.state`` show it (naming at most ``state_listeners`` listeners)."""
        present = stage.present()
        order = {role: index for index, role in enumerate(rules.ROLES)}
        on_stage = sorted((m for m in present if m.role in ON_STAGE), key=lambda m: (order[m.role], m.user_id))
        all_listeners = sorted((m for m in present if m.role == rules.LISTENER), key=lambda m: (not m.hand_raised, m.user_id))
        # A bounded list keeps the state small in a large Space; listener_count has them all, and
        # GET /api/spaces/{id}/listeners pages through the rest.
        listeners = all_listeners[: self.settings.state_listeners]
        ids = {space.host_id, *(m.user_id for m in on_stage), *(m.user_id for m in listeners)}
        ids |= {m.user_id for m in all_listeners if m.hand_raised}
        people = await anyio.to_thread.run_sync(lambda: {i: self.kernel.user_by_id(i) for i in ids})
        await self.kernel.prepare_users([person for person in people.values() if person is not None])

        def person(member: Member) -> dict[str, Any] | None:
            user = people.get(member.user_id)
            if user is None:
                return None
            return {
                "user": self.kernel.user_json(user),
                "role": member.role,
                "muted": member.muted,
                "hand_raised": member.hand_raised,
            }

        host = people.get(space.host_id)
        takes = await anyio.to_thread.run_sync(self.recordings.list, space.id)
        return {
            "id": space.id,
            "title": space.title,
            "status": space.status,
            "host": self.kernel.user_json(host) if host else None,
            "created_at": iso(space.created_at),
            "starts_at": iso(space.starts_at),
            "started_at": iso(space.started_at),
            "ended_at": iso(space.ended_at),
            "recording": space.recording,
            "recordings": [
                {
                    "name": take.name,
                    "url": f"/api/spaces/{space.id}/recordings/{take.name}",
                    "started_at": iso(take.started_at),
                    "duration_seconds": take.duration_seconds,
                    "size": take.size,
                }
                for take in takes
            ],
            "listener_count": len(all_listeners),
            "stage": [p for p in map(person, on_stage) if p is not None],
            "listeners": [p for p in map(person, listeners) if p is not None],
            "hands": [user.username for m in all_listeners if m.hand_raised and (user := people.get(m.user_id)) is not None],
            "limits": {"cohosts": rules.MAX_COHOSTS, "speakers": rules.MAX_SPEAKERS},
        }

    # Realtime ----------------------------------------------------------------------------------

    def space_of(self, connection: Connection, space_id: int | None) -> int:
        """The Space this connection is in (and ``space_id``, when given, must be it); 409 ``not_in_space``."""
        entry = self.by_connection.get(connection.key)
        if entry is None or (space_id is not None and entry[0] != space_id):
            raise StageError(409, "not_in_space", "Join the Space first.")
        return entry[0]

    async def target(self, username: str) -> int:
        user = await anyio.to_thread.run_sync(self.kernel.user, username)
        if user is None:
            raise StageError(409, "not_in_space", f"@{username} is not in this Space.")
        return user.id

    async def join(self, connection: Connection, space_id: int, sdp: str) -> dict[str, Any]:
        user = connection.user
        if connection.key in self.by_connection and self.by_connection[connection.key][0] != space_id:
            await self.leave(connection, None)
        async with self.lock(space_id):
            space, stage = await self._visible(user, space_id)
            member = rules.join(stage, user.id)
            previous = self.joined.get(space_id, {}).get(user.id)
            try:
                # A refused offer changes nothing: an earlier peer (this tab's or another's) stays as it was.
                answer = await self.media.join(space_id, user.id, sdp, can_speak=member.role in ON_STAGE)
            except ValueError as exc:
                raise ApiError(
                    422, "invalid_sdp", f"sdp: {exc}" if str(exc) else "sdp: cannot be answered.", field="sdp"
                ) from None
            try:
                if member.role in ON_STAGE:
                    await self.media.set_muted(space_id, user.id, member.muted)
                if space.status == SCHEDULED:
                    space = await self._go_live(space)
                    stage.status = LIVE
                await anyio.to_thread.run_sync(self.save, space_id, member)
            except BaseException:
                # The new peer replaced any earlier one: without it the member is out of the Space.
                await self._media_leave(space_id, user.id)
                if previous is not None:
                    self.joined.get(space_id, {}).pop(user.id, None)
                    self.by_connection.pop(previous, None)
                    await self._store_left(space_id, user.id)
                raise
            if previous is not None and previous != connection.key:
                # Joined from another tab before: that one drops out.
                self.by_connection.pop(previous, None)
                await self.kernel.realtime.send_to_connection(
                    previous, {"type": "spaces.left", "space_id": space_id, "reason": "joined_elsewhere"}
                )
            self.joined.setdefault(space_id, {})[user.id] = connection.key
            self.by_connection[connection.key] = (space_id, user.id)
            stage.members[user.id] = member
            if member.role == rules.LISTENER:
                state = await self.space_json(space, stage)
                await self.kernel.realtime.send_to_connection(connection.key, {"type": "spaces.state", "space": state})
                self._listeners_changed(space_id)
            else:
                await self._broadcast(space, stage)
            if self.speaking.get(space_id):
                await self.kernel.realtime.send_to_connection(
                    connection.key, {"type": "spaces.speaking", "space_id": space_id, "users": self.speaking[space_id]}
                )
        return {"type": "spaces.joined", "space_id": space_id, "sdp": answer, "role": member.role}

    async def leave(self, connection: Connection, space_id: int | None) -> dict[str, Any]:
        space_id = self.space_of(connection, space_id)
        await self._leave(space_id, connection.user.id, connection.key)
        return {"type": "spaces.left", "space_id": space_id, "reason": "left"}

    async def _leave(self, space_id: int, user_id: int, key: str) -> None:
        async with self.lock(space_id):
            if self.joined.get(space_id, {}).get(user_id) != key:
                return  # already out (ended, removed, or joined from another tab)
            del self.joined[space_id][user_id]
            self.by_connection.pop(key, None)
            await self._media_leave(space_id, user_id)
            space, stage, member = await self._mark_left(space_id, user_id)
            if member is not None and member.role == rules.LISTENER and not member.hand_raised:
                self._listeners_changed(space_id)
            else:
                await self._broadcast(space, stage)

    async def _mark_left(self, space_id: int, user_id: int) -> tuple[Space, Stage, Member | None]:
        """Mark ``user_id`` left in the Space if present there: the Space, its stage after, and the member before."""
        space, stage = await anyio.to_thread.run_sync(self.load, space_id)
        member = stage.members.get(user_id)
        if member is not None and member.present:
            stage.members[user_id] = rules.leave(stage, user_id)
            await anyio.to_thread.run_sync(self.save, space_id, stage.members[user_id])
        return space, stage, member

    async def _store_left(self, space_id: int, user_id: int) -> None:
        """Record that the member left, as best one can while something else already failed."""
        try:
            await self._mark_left(space_id, user_id)
        except Exception:
            logger.exception("could not record that user %s left Space %s", user_id, space_id)

    async def disconnected(self, connection: Connection) -> None:
        """A socket that closes leaves its Space."""
        entry = self.by_connection.get(connection.key)
        if entry is not None:
            await self._leave(entry[0], entry[1], connection.key)

    async def change(self, connection: Connection, space_id: int | None, action: str, **args: Any) -> dict[str, Any]:
        """Apply one stage action (``raise_hand``, ``invite``, ...) from ``connection``; returns ``{}``, the reply."""
        space_id = self.space_of(connection, space_id)
        actor = connection.user.id
        async with self.lock(space_id):
            space, stage = await anyio.to_thread.run_sync(self.load, space_id)
            if space.status == rules.ENDED:
                raise StageError(410, "space_ended", "This Space has ended.")
            if action == "raise_hand":
                changed = rules.raise_hand(stage, actor)
            elif action == "lower_hand":
                changed = rules.lower_hand(stage, actor, args["target"])
            elif action == "invite":
                changed = rules.invite(stage, actor, args["target"])
            elif action == "set_role":
                changed = rules.set_role(stage, actor, args["target"], args["role"])
            elif action == "mute":
                changed = rules.mute(stage, actor, args["target"], args["muted"])
            elif action == "remove":
                changed = rules.remove(stage, actor, args["target"])
            else:  # pragma: no cover - the handlers name only the actions above
                raise ValueError(action)
            before = stage.members[changed.user_id]
            await anyio.to_thread.run_sync(self.save, space_id, changed)
            stage.members[changed.user_id] = changed
            await self._apply_media(space_id, before, changed)
            if changed.removed:
                key = self.joined.get(space_id, {}).pop(changed.user_id, None)
                if key is not None:
                    self.by_connection.pop(key, None)
                    await self.kernel.realtime.send_to_connection(
                        key, {"type": "spaces.left", "space_id": space_id, "reason": "removed"}
                    )
            await self._broadcast(space, stage)
        return {}

    async def react(self, connection: Connection, space_id: int | None, emoji: str) -> dict[str, Any]:
        space_id = self.space_of(connection, space_id)
        _, stage = await anyio.to_thread.run_sync(self.load, space_id)
        rules.check_react(stage, connection.user.id, emoji)
        await self._send_all(
            space_id, {"type": "spaces.reaction", "space_id": space_id, "user": connection.user.username, "emoji": emoji}
        )
        return {}

    async def record(self, connection: Connection, space_id: int | None, on: bool) -> dict[str, Any]:
        space_id = self.space_of(connection, space_id)
        async with self.lock(space_id):
            space, stage = await anyio.to_thread.run_sync(self.load, space_id)
            rules.check_record(stage, connection.user.id)
            if space.recording != on:
                if on:
                    await self._start_recording(space_id)
                else:
                    await self.media.stop_recording(space_id)
                space = await anyio.to_thread.run_sync(self._set_recording, space_id, on)
                await self._broadcast(space, stage)
        return {}

    async def on_speaking(self, space_id: int, user_ids: list[int]) -> None:
        """The media backend's callback: relay ``spaces.speaking`` to everyone in the Space."""
        names = []
        for user_id in user_ids:
            user = await anyio.to_thread.run_sync(self.kernel.user_by_id, user_id)
            if user is not None:
                names.append(user.username)
        if names:
            self.speaking[space_id] = names
        else:
            self.speaking.pop(space_id, None)
        await self._send_all(space_id, {"type": "spaces.speaking", "space_id": space_id, "users": names})

    def on_recorded(self, space_id: int, path: Path) -> None:
        """The media backend's callback for a finished take: publish it in the background, so that every
        host lists it; nothing waits for the upload (the end of a Space, the record switch)."""
        self._in_background(self._publish(space_id), f"spaces-publish-{space_id}")

    def publish_leftovers(self) -> None:
        """Publish, in the background, the finished takes a stop or a crash left on this disk (in any deployment):
        starting up does not wait for their uploads."""
        self._stopping.clear()  # started again after an operator's switch turned the plugin off and on
        self._in_background(self._publish_leftovers(), "spaces-publish-leftovers")

    def _in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, space_id: int) -> None:
        try:
            published = await anyio.to_thread.run_sync(self.recordings.publish, space_id)
        except Exception:  # publish logs each take's failure; this is anything else
            logger.exception("publishing the takes of Space %s failed", space_id)
            return
        if not published or self._stopping.is_set():
            return
        # Those in the Space learn of the take now rather than with the next change of the stage.
        async with self.lock(space_id):
            if not self.joined.get(space_id):
                return
            try:
                space, stage = await anyio.to_thread.run_sync(self.load, space_id)
                await self._broadcast(space, stage)
            except Exception:
                logger.exception("telling Space %s about its new recording failed", space_id)

    async def _publish_leftovers(self) -> None:
        try:
            published = await anyio.to_thread.run_sync(self.recordings.publish_all, self._stopping)
        except Exception:
            logger.exception("publishing the takes left on this disk failed")
            return
        if published:
            logger.info("spaces: published %d take(s) left on this disk", published)

    def reconcile(self) -> None:
        """Starting up, nobody is connected yet: members still marked present in live Spaces are marked
        left, no Space is recording, and takes a crash left half-written (``.part``) are removed.

        Only for a deployment of one process (the in-process bus): with several, the others' members are real.
        Finished takes still on this disk are published by :meth:`publish_leftovers`, in any deployment.
        """
        if self.kernel.realtime.crosses_processes:
            return
        now = utcnow()

        def work(conn: Db) -> None:
            live = select(spaces.c.id).where(spaces.c.status == LIVE).scalar_subquery()
            conn.execute(
                update(members)
                .where(members.c.space_id.in_(live), members.c.left_at.is_(None))
                .values(left_at=now, hand_raised=False)
            )
            conn.execute(update(spaces).where(spaces.c.recording.is_(True), spaces.c.status != SCHEDULED).values(recording=False))

        self.kernel.db.write(work)
        self.recordings.remove_partial()

    async def close(self) -> None:
        """Shutting down: the media backend frees everything (finishing recordings, whose takes are then
        published), and the takes being published are waited for; the leftovers begin no further take."""
        try:
            await self.media.close()
        except Exception:
            logger.exception("the Spaces media backend failed to close")
        self._stopping.set()
        # Not cancelled: a worker thread cannot be stopped mid-upload, and a take finished just now
        # would otherwise wait on this disk for this host's next start.
        while self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
        for task in self._churn.values():
            task.cancel()
        self._churn.clear()
        self.joined.clear()
        self.by_connection.clear()

    # Helpers -----------------------------------------------------------------------------------

    async def _apply_media(self, space_id: int, before: Member, after: Member) -> None:
        if after.removed:
            await self._media_leave(space_id, after.user_id)
            return
        if self.joined.get(space_id, {}).get(after.user_id) is None:
            return
        was, now = before.role in ON_STAGE, after.role in ON_STAGE
        if was != now:
            await self.media.set_speaker(space_id, after.user_id, now)
        if now and before.muted != after.muted or (now and not was):
            await self.media.set_muted(space_id, after.user_id, after.muted)

    async def _media_leave(self, space_id: int, user_id: int) -> None:
        try:
            await self.media.leave(space_id, user_id)
        except Exception:
            logger.exception("the media backend failed to disconnect user %s from Space %s", user_id, space_id)

    async def _send_all(self, space_id: int, message: dict[str, Any]) -> None:
        await self.kernel.realtime.send_to_connections(list(self.joined.get(space_id, {}).values()), message)

    async def _broadcast(self, space: Space, stage: Stage) -> None:
        churn = self._churn.pop(space.id, None)
        if churn is not None and churn is not asyncio.current_task():
            churn.cancel()  # this state carries the listeners' comings and goings too
        state = await self.space_json(space, stage)
        await self._send_all(space.id, {"type": "spaces.state", "space": state})

    def _listeners_changed(self, space_id: int) -> None:
        """Tell everyone the new state soon, once for however many listeners come and go meanwhile."""
        if space_id not in self._churn:
            self._churn[space_id] = asyncio.create_task(self._after_churn(space_id), name=f"spaces-churn-{space_id}")

    async def _after_churn(self, space_id: int) -> None:
        await asyncio.sleep(self.settings.listener_churn_seconds)
        async with self.lock(space_id):
            if self._churn.get(space_id) is not asyncio.current_task():
                return
            try:
                space, stage = await anyio.to_thread.run_sync(self.load, space_id)
                await self._broadcast(space, stage)
            except Exception:
                logger.exception("telling Space %s about its listeners failed", space_id)
            finally:
                if self._churn.get(space_id) is asyncio.current_task():
                    del self._churn[space_id]


def count_live(kernel: Kernel) -> int:
    """How many Spaces are live (for metrics and tests)."""
    return kernel.db.read(
        lambda conn: conn.execute(select(func.count()).select_from(spaces).where(spaces.c.status == LIVE)).scalar_one()
    )


SPACES: PluginState[Spaces] = PluginState("spaces")
