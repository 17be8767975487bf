"""The Spaces media backend interface: what carries a Space's audio.

The embedded default is :class:`plugins.spaces.aiortc_media.AiortcMedia`:
the server itself decodes each speaker once, mixes, encodes the mix once
per Space and sends the same packets to every listener. A deployment that
outgrows one server hands the media to an SFU instead (docs/spaces-scale.md)
by implementing this protocol; the stage, the roles and every rule stay in
the plugin's control plane, which tells the backend only what it decided.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

# Told every time the set of people speaking in a Space changes: (space_id, their user ids).
SpeakingCallback = Callable[[int, list[int]], Awaitable[None]]
# Told on the event loop when a take is finished, whole under its name: (space_id, its path). It must
# return at once (publishing a take is slow work for the background).
RecordedCallback = Callable[[int, Path], None]


class SpacesMedia(Protocol):
    """Where the audio goes. Every method is a coroutine and is called from the event loop."""

    async def join(self, space_id: int, user_id: int, offer_sdp: str, *, can_speak: bool) -> str:
        """Connect a participant's peer; returns the answer SDP.

        The participant receives the Space's mix (a speaker: the mix without
        their own voice); with ``can_speak`` their microphone is mixed in.
        Raises ``ValueError`` for SDP that cannot be answered.
        """
        ...

    async def set_speaker(self, space_id: int, user_id: int, can_speak: bool) -> None:
        """Start or stop mixing the participant's microphone (invited to the stage, back to listening)."""
        ...

    async def set_muted(self, space_id: int, user_id: int, muted: bool) -> None:
        """Leave the participant's microphone out of the mix while muted."""
        ...

    async def leave(self, space_id: int, user_id: int) -> None:
        """Disconnect the participant's peer."""
        ...

    async def start_recording(self, space_id: int, path: Path) -> None:
        """Write the Space's mix to ``path`` from now on (Ogg/Opus)."""
        ...

    async def stop_recording(self, space_id: int) -> None:
        """Finish the recording file (the backend's ``on_recorded`` callback is told of it)."""
        ...

    async def end(self, space_id: int) -> None:
        """Disconnect everyone and free the Space's mixer (finishing a recording first)."""
        ...

    async def close(self) -> None:
        """Free everything (the app is shutting down)."""
        ...
