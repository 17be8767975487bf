"""Everything's kernel. This module's exports are the public API for plugins; the rest is private.

A plugin imports from ``kernel`` only::

    from kernel import Feature, Manifest, hookimpl

What each name is for is in docs/plugins.md; the hooks are documented in
:mod:`kernel.plugin.hookspecs`.

Each name is imported from its module when first used, so that importing one
part of the kernel (a plugin's ``hookimpl``, the CLI, the storage layer) does
not load all of it, WebRTC media libraries included.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # as X: re-exported names, for type checkers
    from kernel.app import Kernel as Kernel
    from kernel.app import create_app as create_app
    from kernel.entitlements import Decision as Decision
    from kernel.entitlements import Grant as Grant
    from kernel.entitlements import Plan as Plan
    from kernel.errors import ApiError as ApiError
    from kernel.errors import validate as validate
    from kernel.identity import User as User
    from kernel.identity import iso as iso
    from kernel.media_storage.base import MediaStorage as MediaStorage
    from kernel.media_storage.base import StoredFile as StoredFile
    from kernel.pagination import Page as Page
    from kernel.pagination import decode_cursor as decode_cursor
    from kernel.pagination import encode_cursor as encode_cursor
    from kernel.periodic import Periodic as Periodic
    from kernel.plugin.answers import collect as collect
    from kernel.plugin.answers import collect_async as collect_async
    from kernel.plugin.answers import settle as settle
    from kernel.plugin.contract import Command as Command
    from kernel.plugin.contract import Feature as Feature
    from kernel.plugin.contract import Manifest as Manifest
    from kernel.plugin.contract import NavItem as NavItem
    from kernel.plugin.contract import ProfileAction as ProfileAction
    from kernel.plugin.contract import ProfileSection as ProfileSection
    from kernel.plugin.contract import TextEntity as TextEntity
    from kernel.plugin.hookspecs import hookimpl as hookimpl
    from kernel.plugin.state import PluginState as PluginState
    from kernel.realtime.client import RealtimeClient as RealtimeClient
    from kernel.realtime.client import RealtimeError as RealtimeError
    from kernel.realtime.client import connect_socket as connect_socket
    from kernel.realtime.connection import Connection as Connection
    from kernel.realtime.messages import realtime_feature_required as realtime_feature_required
    from kernel.sandbox_world import Person as Person
    from kernel.sandbox_world import SandboxWorld as SandboxWorld
    from kernel.storage.database import Database as Database
    from kernel.storage.database import inserted_id as inserted_id
    from kernel.storage.job_locks import JobLocks as JobLocks
    from kernel.storage.models import utcnow as utcnow
    from kernel.text import render_text as render_text
    from kernel.web.forms import login_redirect as login_redirect
    from kernel.web.forms import read_form as read_form
    from kernel.web.forms import redirect as redirect
    from kernel.web.forms import safe_next as safe_next
    from kernel.web.guards import feature_required as feature_required
    from kernel.web.rendering import render as render
    from kernel.web.requests import current_user as current_user
    from kernel.web.requests import get_kernel as get_kernel
    from kernel.web.requests import query_limit as query_limit
    from kernel.web.requests import read_json as read_json
    from kernel.web.requests import require_user as require_user
    from kernel.web.responses import JSONResponse as JSONResponse
    from kernel.web.stored_files import media_response as media_response
    from kernel.webrtc.ice import HostAddresses as HostAddresses
    from kernel.webrtc.ice import IceSettings as IceSettings
    from kernel.webrtc.ice import host_addresses as host_addresses
    from kernel.webrtc.ice import ice_servers as ice_servers
    from kernel.webrtc.ice import parse_candidate as parse_candidate
    from kernel.webrtc.ice import rtc_configuration as rtc_configuration
    from kernel.webrtc.ice import turn_credentials as turn_credentials
    from kernel.webrtc.media import ReceivedMedia as ReceivedMedia
    from kernel.webrtc.media import ToneTrack as ToneTrack
    from kernel.webrtc.sdp import MAX_SDP as MAX_SDP
    from kernel.webrtc.sdp import Sdp as Sdp
    from kernel.webrtc.sdp import looks_like_sdp as looks_like_sdp
    from kernel.webrtc.sdp import require_sdp as require_sdp
    from kernel.webrtc.sdp import validate_signal as validate_signal

# Each public name, and the module it comes from (the imports above, for type checkers).
_EXPORTS: dict[str, str] = {
    "ApiError": "kernel.errors",
    "collect": "kernel.plugin.answers",
    "collect_async": "kernel.plugin.answers",
    "Command": "kernel.plugin.contract",
    "connect_socket": "kernel.realtime.client",
    "Connection": "kernel.realtime.connection",
    "create_app": "kernel.app",
    "current_user": "kernel.web.requests",
    "Database": "kernel.storage.database",
    "Decision": "kernel.entitlements",
    "decode_cursor": "kernel.pagination",
    "encode_cursor": "kernel.pagination",
    "Feature": "kernel.plugin.contract",
    "feature_required": "kernel.web.guards",
    "get_kernel": "kernel.web.requests",
    "Grant": "kernel.entitlements",
    "hookimpl": "kernel.plugin.hookspecs",
    "host_addresses": "kernel.webrtc.ice",
    "HostAddresses": "kernel.webrtc.ice",
    "ice_servers": "kernel.webrtc.ice",
    "IceSettings": "kernel.webrtc.ice",
    "inserted_id": "kernel.storage.database",
    "iso": "kernel.identity",
    "JobLocks": "kernel.storage.job_locks",
    "JSONResponse": "kernel.web.responses",
    "Kernel": "kernel.app",
    "login_redirect": "kernel.web.forms",
    "looks_like_sdp": "kernel.webrtc.sdp",
    "Manifest": "kernel.plugin.contract",
    "MediaStorage": "kernel.media_storage.base",
    "media_response": "kernel.web.stored_files",
    "MAX_SDP": "kernel.webrtc.sdp",
    "NavItem": "kernel.plugin.contract",
    "Page": "kernel.pagination",
    "parse_candidate": "kernel.webrtc.ice",
    "Periodic": "kernel.periodic",
    "Person": "kernel.sandbox_world",
    "Plan": "kernel.entitlements",
    "PluginState": "kernel.plugin.state",
    "ProfileAction": "kernel.plugin.contract",
    "ProfileSection": "kernel.plugin.contract",
    "query_limit": "kernel.web.requests",
    "read_form": "kernel.web.forms",
    "read_json": "kernel.web.requests",
    "realtime_feature_required": "kernel.realtime.messages",
    "RealtimeClient": "kernel.realtime.client",
    "RealtimeError": "kernel.realtime.client",
    "ReceivedMedia": "kernel.webrtc.media",
    "redirect": "kernel.web.forms",
    "render": "kernel.web.rendering",
    "render_text": "kernel.text",
    "require_sdp": "kernel.webrtc.sdp",
    "require_user": "kernel.web.requests",
    "rtc_configuration": "kernel.webrtc.ice",
    "safe_next": "kernel.web.forms",
    "SandboxWorld": "kernel.sandbox_world",
    "Sdp": "kernel.webrtc.sdp",
    "StoredFile": "kernel.media_storage.base",
    "settle": "kernel.plugin.answers",
    "TextEntity": "kernel.plugin.contract",
    "ToneTrack": "kernel.webrtc.media",
    "turn_credentials": "kernel.webrtc.ice",
    "User": "kernel.identity",
    "utcnow": "kernel.storage.models",
    "validate": "kernel.errors",
    "validate_signal": "kernel.webrtc.sdp",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """``kernel.<name>``: the public name, imported from its module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kernel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
