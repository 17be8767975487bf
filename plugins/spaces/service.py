"""The Spaces control plane on one kernel: Spaces, members and every stage change.

``kernel.plugin_state["spaces"]`` holds one :class:`Spaces`. The rules are
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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from sqlalchemy import and_, case, func, insert, or_, select, update

from kernel import ApiError, Connection, Page, User, decode_cursor, encode_cursor, iso, utcnow
from plugins.spaces import stage as rules
from plugins.spaces.aiortc_media import AiortcMedia
from plugins.spaces.models import members, spaces
from plugins.spaces.settings import SpacesSettings
from plugins.spaces.stage import LIVE, ON_STAGE, SCHEDULED, Member, Stage, StageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection as Db

    from kernel import Kernel
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
        self.media: SpacesMedia = AiortcMedia(on_speaking=self.on_speaking, host_addresses=settings.host_addresses or None)
        # space id -> user id -> the Connection.key carrying that member.
        self.joined: dict[int, dict[int, str]] = {}
        # Connection.key -> (space id, user id).
        self.by_connection: dict[str, tuple[int, int]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

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

    async def create(self, host: User, title: str, starts_at: datetime | None) -> dict[str, Any]:
        """A new Space: live at once, or scheduled for ``starts_at`` (future, within the settings' window)."""
        now = utcnow()
        if starts_at is not None:
            if starts_at.tzinfo is not None:
                starts_at = (starts_at - starts_at.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]
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
            "recording": False,
        }

        def work(conn: Db) -> Space:
            space_id = conn.execute(insert(spaces).values(**values)).inserted_primary_key[0]
            space = self._get(conn, space_id)
            assert space is not None
            return space

        space = await anyio.to_thread.run_sync(self.kernel.db.write, work)
        if status == LIVE:
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

    async def get(self, viewer: User, space_id: int) -> dict[str, Any]:
        space, stage = await self._visible(viewer, space_id)
        return await self.space_json(space, stage)

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
                space = await anyio.to_thread.run_sync(self.set_status, space_id, LIVE)
                stage.status = LIVE
                await self._announce(space)
        return await self.space_json(space, stage)

    async def end(self, user: User, space_id: int) -> dict[str, Any]:
        """The host ends the Space: everyone is disconnected and told ``spaces.ended``."""
        async with self.lock(space_id):
            space, stage = await self._visible(user, space_id)
            rules.check_end(stage, user.id)
            space = await anyio.to_thread.run_sync(self.set_status, space_id, rules.ENDED)
            keys = self.joined.pop(space_id, {})
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

    async def _announce(self, space: Space) -> None:
        """Tell the host's followers that the Space started."""
        host = await anyio.to_thread.run_sync(self.kernel.user_by_id, space.host_id)
        if host is None:
            return
        followers = await anyio.to_thread.run_sync(self.kernel.follower_ids, host)
        text = f"{host.display_name or host.username} (@{host.username}) started a Space: {space.title}"
        for follower in followers:
            try:
                await self.kernel.notifications.notify(follower, "spaces.started", text, actor=host, data={"space_id": space.id})
            except Exception:
                logger.exception("could not tell user %s that Space %s started", follower, space.id)

    async def space_json(self, space: Space, stage: Stage) -> dict[str, Any]:
        """The Space as the API and ``spaces.state`` show it."""
        present = stage.present()
        ids = {space.host_id, *(member.user_id for member in present)}
        people = {i: await anyio.to_thread.run_sync(self.kernel.user_by_id, i) for i in ids}
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

        order = {role: index for index, role in enumerate(rules.ROLES)}
        on_stage = sorted((m for m in present if m.role in ON_STAGE), key=lambda m: (order[m.role], m.user_id))
        listeners = sorted((m for m in present if m.role == rules.LISTENER), key=lambda m: m.user_id)
        host = people.get(space.host_id)
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
            "listener_count": len(listeners),
            "stage": [p for p in map(person, on_stage) if p is not None],
            "listeners": [p for p in map(person, listeners) if p is not None],
            "hands": [people[m.user_id].username for m in listeners if m.hand_raised and people.get(m.user_id)],  # type: ignore[union-attr]
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
            if previous is not None:
                # Joined from another tab before: that one drops out.
                self.by_connection.pop(previous, None)
                await self._media_leave(space_id, user.id)
                if previous != connection.key:
                    await self.kernel.realtime.send_to_connection(
                        previous, {"type": "spaces.left", "space_id": space_id, "reason": "joined_elsewhere"}
                    )
            try:
                answer = await self.media.join(space_id, user.id, sdp, can_speak=member.role in ON_STAGE)
            except ValueError as exc:
                raise ApiError(
                    422, "invalid_sdp", f"sdp: {exc}" if str(exc) else "sdp: cannot be answered.", field="sdp"
                ) from None
            try:
                if member.role in ON_STAGE:
                    await self.media.set_muted(space_id, user.id, member.muted)
                if space.status == SCHEDULED:
                    space = await anyio.to_thread.run_sync(self.set_status, space_id, LIVE)
                    stage.status = LIVE
                    await self._announce(space)
                await anyio.to_thread.run_sync(self.save, space_id, member)
            except BaseException:
                await self._media_leave(space_id, user.id)
                raise
            self.joined.setdefault(space_id, {})[user.id] = connection.key
            self.by_connection[connection.key] = (space_id, user.id)
            stage.members[user.id] = member
            await self._broadcast(space, stage)
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
            space, stage = await anyio.to_thread.run_sync(self.load, space_id)
            if user_id in stage.members and stage.members[user_id].present:
                member = rules.leave(stage, user_id)
                await anyio.to_thread.run_sync(self.save, space_id, member)
                stage.members[user_id] = member
            await self._broadcast(space, stage)

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
                    folder = self.kernel.settings.data_dir / self.settings.recordings_dir
                    await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
                    stamp = utcnow().strftime("%Y%m%dT%H%M%S")
                    await self.media.start_recording(space_id, folder / f"space-{space_id}-{stamp}.ogg")
                else:
                    await self.media.stop_recording(space_id)

                def work(conn: Db) -> Space:
                    conn.execute(update(spaces).where(spaces.c.id == space_id).values(recording=on))
                    found = self._get(conn, space_id)
                    assert found is not None
                    return found

                space = await anyio.to_thread.run_sync(self.kernel.db.write, work)
                await self._broadcast(space, stage)
        return {}

    async def on_speaking(self, space_id: int, user_ids: list[int]) -> None:
        """The media backend's callback: relay ``spaces.speaking`` to everyone in the Space."""
        names = []
        for user_id in user_ids:
            user = await anyio.to_thread.run_sync(self.kernel.user_by_id, user_id)
            if user is not None:
                names.append(user.username)
        await self._send_all(space_id, {"type": "spaces.speaking", "space_id": space_id, "users": names})

    async def close(self) -> None:
        """Shutting down: the media backend frees everything."""
        try:
            await self.media.close()
        except Exception:
            logger.exception("the Spaces media backend failed to close")
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
        for key in list(self.joined.get(space_id, {}).values()):
            await self.kernel.realtime.send_to_connection(key, message)

    async def _broadcast(self, space: Space, stage: Stage) -> None:
        state = await self.space_json(space, stage)
        await self._send_all(space.id, {"type": "spaces.state", "space": state})


def count_live(kernel: Kernel) -> int:
    """How many Spaces are live (for metrics and tests)."""
    return kernel.db.read(
        lambda conn: conn.execute(select(func.count()).select_from(spaces).where(spaces.c.status == LIVE)).scalar_one()
    )
