"""``[plugins.calls]``: ring, reconnect and sweep timings, the ICE servers handed to clients, the server peers' addresses.

The ICE keys (``stun_urls``, ``turn_urls``, ``turn_secret``,
``turn_ttl_seconds``, ``host_addresses``) and their checks are the kernel's
:class:`kernel.IceSettings`; the echo test's peers are the server peers here.
"""

from __future__ import annotations

from pydantic import Field

from kernel import IceSettings


class CallsSettings(IceSettings):
    # How long an invite rings before it ends as "timeout".
    ring_timeout_seconds: float = Field(default=60, gt=0, le=600)
    # How long a call outlives a party's dropped socket, waiting for calls.resume.
    reconnect_grace_seconds: float = Field(default=20, gt=0, le=600)
    # How often each process looks for calls to end that no timer of its own covers: graces and
    # rings timed by a process that died, and sides whose process died without a word.
    sweep_seconds: float = Field(default=5, gt=0, le=300)
    # An echo test ends by itself after this long.
    echo_max_seconds: float = Field(default=300, gt=0)
