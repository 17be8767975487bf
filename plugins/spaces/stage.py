"""The rules of a Space's stage, as pure functions over a :class:`Stage`.

No database, no sockets, no media: the service loads a Space's members,
asks this module whether an action is allowed and what it changes, stores
the result and tells the media backend. Every refusal is a
:class:`StageError` with a stable code (docs/spaces-protocol.md lists them).

Roles: one ``host``; up to :data:`MAX_COHOSTS` ``cohost``; up to
:data:`MAX_SPEAKERS` ``speaker`` (the host and co-hosts do not count
against it); ``listener`` without limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from kernel import ApiError

HOST, COHOST, SPEAKER, LISTENER = "host", "cohost", "speaker", "listener"
ROLES = (HOST, COHOST, SPEAKER, LISTENER)
ON_STAGE = frozenset({HOST, COHOST, SPEAKER})
MODERATORS = frozenset({HOST, COHOST})
MAX_COHOSTS = 2
MAX_SPEAKERS = 10

SCHEDULED, LIVE, ENDED = "scheduled", "live", "ended"

# The reactions anyone in a Space may send; kept short so that every client can show them all.
REACTIONS = ("👏", "😂", "❤️", "💯", "🙌", "😮", "👍", "🔥")


class StageError(ApiError):
    """A refusal of a stage action: ``forbidden_role`` (403), ``stage_full``, ``cohosts_full`` (409) and the rest."""


def forbidden(message: str) -> StageError:
    return StageError(403, "forbidden_role", message)


@dataclass(frozen=True)
class Member:
    """One person's place in a Space. ``present`` is False once they left (they may come back unless ``removed``)."""

    user_id: int
    role: str
    hand_raised: bool = False
    muted: bool = True
    removed: bool = False
    present: bool = True


@dataclass
class Stage:
    """A Space's state as the rules see it: who is in it, in which role."""

    space_id: int
    host_id: int
    status: str
    members: dict[int, Member] = field(default_factory=dict)

    def present(self) -> list[Member]:
        return [member for member in self.members.values() if member.present and not member.removed]

    def count(self, role: str) -> int:
        return sum(1 for member in self.present() if member.role == role)

    def member(self, user_id: int) -> Member:
        """The member ``user_id`` who is in the Space now; 409 ``not_in_space`` otherwise."""
        found = self.members.get(user_id)
        if found is None or not found.present or found.removed:
            raise StageError(409, "not_in_space", "That person is not in this Space.")
        return found

    def actor(self, user_id: int) -> Member:
        """The member acting; 409 ``not_in_space`` when they have not joined (or left)."""
        found = self.members.get(user_id)
        if found is None or not found.present or found.removed:
            raise StageError(409, "not_in_space", "Join the Space first.")
        return found


# Joining and leaving --------------------------------------------------------------------------


def join(stage: Stage, user_id: int) -> Member:
    """The member ``user_id`` becomes on joining: the host takes the host's seat; a returning speaker keeps theirs;
    someone joining again while still in keeps everything (role, microphone, raised hand).

    Refused: ``space_ended`` (410), ``removed`` (403), ``not_started`` (409) for anyone but the host of a
    scheduled Space.
    """
    if stage.status == ENDED:
        raise StageError(410, "space_ended", "This Space has ended.")
    earlier = stage.members.get(user_id)
    if earlier is not None and earlier.removed:
        raise StageError(403, "removed", "You were removed from this Space and cannot join it again.")
    if earlier is not None and earlier.present:
        # Joining again while in: a new peer (to send once on stage) or another tab. The place is kept.
        return earlier
    if user_id == stage.host_id:
        return Member(user_id, HOST, muted=earlier.muted if earlier else True)
    if stage.status == SCHEDULED:
        raise StageError(409, "not_started", "This Space has not started yet.")
    if earlier is not None and earlier.role != LISTENER:
        role = earlier.role
        # A seat left empty may have been given away meanwhile: come back as a listener then.
        if (role == COHOST and stage.count(COHOST) >= MAX_COHOSTS) or (role == SPEAKER and stage.count(SPEAKER) >= MAX_SPEAKERS):
            role = LISTENER
        return Member(user_id, role, muted=True)
    return Member(user_id, LISTENER, muted=True)


def leave(stage: Stage, user_id: int) -> Member:
    """The member after leaving; their role is kept for a return."""
    return replace(stage.actor(user_id), present=False, hand_raised=False)


# Hands ----------------------------------------------------------------------------------------


def raise_hand(stage: Stage, user_id: int) -> Member:
    """A listener asks to speak; someone already on the stage cannot (``forbidden_role``)."""
    member = stage.actor(user_id)
    if member.role != LISTENER:
        raise forbidden("You are already on the stage.")
    return replace(member, hand_raised=True)


def lower_hand(stage: Stage, actor_id: int, target_id: int) -> Member:
    """Lower one's own hand, or (host and co-hosts, handling requests) somebody else's."""
    actor = stage.actor(actor_id)
    target = stage.member(target_id)
    if actor_id != target_id and actor.role not in MODERATORS:
        raise forbidden("Only the host and co-hosts can lower someone else's hand.")
    return replace(target, hand_raised=False)


# Roles ----------------------------------------------------------------------------------------


def invite(stage: Stage, actor_id: int, target_id: int) -> Member:
    """Host or co-host brings a listener up to speak (muted, until they unmute themselves)."""
    actor = stage.actor(actor_id)
    if actor.role not in MODERATORS:
        raise forbidden("Only the host and co-hosts can invite people to speak.")
    target = stage.member(target_id)
    if target.role != LISTENER:
        raise StageError(409, "already_on_stage", "That person is already on the stage.")
    if stage.count(SPEAKER) >= MAX_SPEAKERS:
        raise StageError(409, "stage_full", f"The stage is full: at most {MAX_SPEAKERS} speakers.")
    return replace(target, role=SPEAKER, hand_raised=False, muted=True)


def set_role(stage: Stage, actor_id: int, target_id: int, role: str) -> Member:
    """Change ``target``'s role to ``cohost``, ``speaker`` or ``listener``.

    - Anyone may step down to ``listener`` themselves (not the host).
    - ``speaker`` ↔ ``listener``: the host or a co-host; a co-host cannot move the host or another co-host.
    - ``cohost`` (to it or from it): the host only, at most :data:`MAX_COHOSTS`.
    """
    if role not in (COHOST, SPEAKER, LISTENER):
        raise StageError(422, "validation_error", "role: one of cohost, speaker, listener.", field="role")
    actor = stage.actor(actor_id)
    target = stage.member(target_id)
    if target.role == HOST:
        raise forbidden("Nobody can change the host's role.")
    if target.role == role:
        return target
    stepping_down = actor_id == target_id and role == LISTENER
    if not stepping_down:
        if actor.role not in MODERATORS:
            raise forbidden("Only the host and co-hosts can change roles.")
        if (role == COHOST or target.role == COHOST) and actor.role != HOST:
            raise forbidden("Only the host can add or remove co-hosts.")
    if role == COHOST and stage.count(COHOST) >= MAX_COHOSTS:
        raise StageError(409, "cohosts_full", f"A Space has at most {MAX_COHOSTS} co-hosts.")
    if role == SPEAKER and stage.count(SPEAKER) >= MAX_SPEAKERS:
        raise StageError(409, "stage_full", f"The stage is full: at most {MAX_SPEAKERS} speakers.")
    muted = True if role == LISTENER else target.muted
    return replace(target, role=role, hand_raised=False, muted=muted)


# Microphones ----------------------------------------------------------------------------------


def mute(stage: Stage, actor_id: int, target_id: int, muted: bool) -> Member:
    """Mute or unmute.

    Anyone on the stage mutes and unmutes themselves. The host mutes anyone;
    a co-host anyone but the host; a speaker nobody else. Nobody unmutes
    somebody else: a microphone opens only by its owner's choice.
    """
    actor = stage.actor(actor_id)
    target = stage.member(target_id)
    if actor_id == target_id:
        if target.role not in ON_STAGE:
            raise forbidden("Listeners have no microphone in a Space; raise your hand to speak.")
        return replace(target, muted=muted)
    if not muted:
        raise forbidden("Only the speaker themselves can unmute.")
    if actor.role not in MODERATORS:
        raise forbidden("Only the host and co-hosts can mute others.")
    if target.role == HOST:
        raise forbidden("Nobody can mute the host.")
    return replace(target, muted=True)


# Removal --------------------------------------------------------------------------------------


def remove(stage: Stage, actor_id: int, target_id: int) -> Member:
    """Remove someone for good: the host removes anyone but themselves; a co-host speakers and listeners."""
    actor = stage.actor(actor_id)
    target = stage.member(target_id)
    if actor.role not in MODERATORS:
        raise forbidden("Only the host and co-hosts can remove people.")
    if target.role == HOST or actor_id == target_id:
        raise forbidden("The host cannot be removed, and nobody removes themselves: leave instead.")
    if target.role == COHOST and actor.role != HOST:
        raise forbidden("Only the host can remove a co-host.")
    return replace(target, removed=True, present=False, hand_raised=False, muted=True)


# The Space itself -----------------------------------------------------------------------------


def check_react(stage: Stage, user_id: int, emoji: str) -> None:
    stage.actor(user_id)
    if emoji not in REACTIONS:
        raise StageError(422, "validation_error", f"emoji: one of {' '.join(REACTIONS)}.", field="emoji")


def check_record(stage: Stage, user_id: int) -> None:
    if stage.actor(user_id).role != HOST:
        raise forbidden("Only the host can record the Space.")


def check_end(stage: Stage, user_id: int) -> None:
    if user_id != stage.host_id:
        raise forbidden("Only the host can end the Space.")
    if stage.status == ENDED:
        raise StageError(410, "space_ended", "This Space has ended.")


def check_start(stage: Stage, user_id: int) -> None:
    if user_id != stage.host_id:
        raise forbidden("Only the host can start the Space.")
    if stage.status == ENDED:
        raise StageError(410, "space_ended", "This Space has ended.")
