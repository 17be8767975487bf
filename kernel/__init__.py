"""Everything's kernel. This module's exports are the public API for plugins; the rest is private.

A plugin imports from ``kernel`` only::

    from kernel import Feature, Manifest, hookimpl
"""

from kernel.address_book import Page, decode_cursor, encode_cursor
from kernel.app import Kernel, create_app, get_kernel
from kernel.contract import Command, Feature, Manifest, NavItem, ProfileAction, ProfileSection, TextEntity
from kernel.entitlements import Decision, Grant, Plan
from kernel.errors import ApiError
from kernel.guards import feature_required
from kernel.hookspecs import hookimpl
from kernel.http import JSONResponse, current_user, query_limit, read_json, require_user
from kernel.identity import User, iso
from kernel.models import utcnow
from kernel.periodic import Periodic
from kernel.realtime import Connection, realtime_feature_required
from kernel.sandbox_world import Person, SandboxWorld
from kernel.text import render_text
from kernel.web import login_redirect, read_form, redirect, render, safe_next

__all__ = [
    "ApiError",
    "Command",
    "Connection",
    "Decision",
    "Feature",
    "Grant",
    "JSONResponse",
    "Kernel",
    "Manifest",
    "NavItem",
    "Page",
    "Periodic",
    "Person",
    "Plan",
    "ProfileAction",
    "ProfileSection",
    "SandboxWorld",
    "TextEntity",
    "User",
    "create_app",
    "current_user",
    "decode_cursor",
    "encode_cursor",
    "feature_required",
    "get_kernel",
    "hookimpl",
    "iso",
    "login_redirect",
    "query_limit",
    "realtime_feature_required",
    "render_text",
    "read_form",
    "read_json",
    "redirect",
    "render",
    "require_user",
    "safe_next",
    "utcnow",
]
