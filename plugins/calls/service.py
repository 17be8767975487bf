"""The calls plugin's services on one kernel, as its routes, pages and handlers reach them.

:data:`CALLS` holds one :class:`Calls` per kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread

from kernel import Page, PluginState, User
from plugins.calls.records import Records, call_json
from plugins.calls.screening import MEDIA, Screening
from plugins.calls.settings import CallsSettings
from plugins.calls.switchboard import Switchboard

if TYPE_CHECKING:
    from kernel import Kernel


class Calls:
    """Settings, screening, records and the switchboard of one kernel."""

    def __init__(self, kernel: Kernel, settings: CallsSettings) -> None:
        self.kernel = kernel
        self.settings = settings
        self.screening = Screening(kernel)
        self.records = Records(kernel)
        self.switchboard = Switchboard(kernel, settings, self.screening, self.records)

    async def get_settings(self, user: User) -> dict[str, Any]:
        """The user's call settings: ``{"enabled", "allow"}``."""
        return (await anyio.to_thread.run_sync(self.screening.settings_of, user.id)).json()

    async def put_settings(self, user: User, enabled: bool, allow: list[str]) -> dict[str, Any]:
        """Replace the user's call settings; 422 naming a bad ``allow`` value."""
        return (await anyio.to_thread.run_sync(self.screening.save, user.id, enabled, allow)).json()

    async def can_call(self, caller: User, username: str, media: str = "audio") -> dict[str, Any]:
        """``{"allowed", "reason", "media"}``: whether ``caller`` may call ``username`` with ``media``, and which media they may use."""

        def work() -> dict[str, Any]:
            callee = self.kernel.user(username)
            verdicts = {kind: self.screening.verdict(caller, callee, kind) for kind in MEDIA}
            asked = verdicts[media]
            return {"allowed": asked.allowed, "reason": asked.reason, "media": [kind for kind in MEDIA if verdicts[kind].allowed]}

        return await anyio.to_thread.run_sync(work)

    async def history(self, user: User, cursor: str | None, limit: int) -> Page:
        """The user's calls, newest first, as API call objects."""
        page = await anyio.to_thread.run_sync(self.records.history, user.id, cursor, limit)
        people = {self.kernel.user_by_id(i) for call in page.results for i in (call.caller_id, call.callee_id)}
        await self.kernel.prepare_users([person for person in people if person is not None])
        return Page([call_json(self.kernel, call, user.id) for call in page.results], page.next_cursor)

    async def call(self, user: User, call_id: str) -> dict[str, Any] | None:
        """One call of the user's, or None (also for somebody else's)."""
        found = await anyio.to_thread.run_sync(self.records.get, call_id)
        if found is None or found.side_of(user.id) is None:
            return None
        return call_json(self.kernel, found, user.id)


CALLS: PluginState[Calls] = PluginState("calls")
