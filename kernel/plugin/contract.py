"""The value types that plugins hand to the kernel through the hooks."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    from kernel.app import Kernel

PLUGIN_NAME = re.compile(r"[a-z][a-z0-9_]{1,31}")  # use with fullmatch


@dataclass(frozen=True)
class Manifest:
    """Who a plugin is and what it needs.

    :param name: lowercase identifier; also its URL namespace (``/<name>/``,
        ``/api/<name>/``), its table prefix and its realtime message prefix.
    :param requires: names of plugins that must be enabled for this one to run.
    :param settings_model: a pydantic model for ``[plugins.<name>]``; None when
        the plugin takes no settings.
    :param templates: a folder of Jinja2 templates, reachable as ``<name>/...``.
    :param static: a folder served at ``/static/plugins/<name>/``.
    :param migrations: a folder of Alembic revisions forming the plugin's own
        branch, labelled with its name; required when the plugin owns tables.
    """

    name: str
    title: str
    version: str
    description: str
    requires: tuple[str, ...] = ()
    settings_model: type[BaseModel] | None = None
    templates: Path | None = None
    static: Path | None = None
    migrations: Path | None = None


@dataclass(frozen=True)
class Feature:
    """Something a plan can include, such as ``calls.video``.

    :param plan: the plan that includes it unless the operator says otherwise.
    :param upsell: the sentence a refused user reads; by default made from the
        title ("Video calls are a premium feature. Subscribe to gain access.").
    """

    key: str
    title: str
    description: str
    plan: str = "free"
    upsell: str | None = None


@dataclass(frozen=True)
class NavItem:
    """An entry of the site navigation."""

    label: str
    href: str
    order: int = 100
    # Shown only to signed-in users when True.
    requires_login: bool = False
    # A feature key: without it the item shows a lock and leads to the upsell page.
    feature: str | None = None
    # Set by the kernel, not by plugins: the viewer lacks ``feature``.
    locked: bool = False


@dataclass(frozen=True)
class ProfileAction:
    """A button on a profile page.

    With ``method`` "get" the button is a link to ``href``; otherwise it is a
    form posting to ``href`` with the CSRF token, so it works without scripts.
    """

    label: str
    href: str
    method: str = "get"
    order: int = 100
    style: str = "secondary"
    fields: dict[str, str] = field(default_factory=dict)
    # A feature key: without it the button shows a lock and leads to the upsell page.
    feature: str | None = None
    # Set by the kernel, not by plugins: the viewer lacks ``feature``.
    locked: bool = False


@dataclass(frozen=True)
class ProfileSection:
    """A block of a user's profile page (their posts, their Spaces), rendered from a plugin's template.

    :param template: a template of the plugin (``feed/profile_posts.html``),
        rendered inside the profile page with ``context`` added to the page's own.
    """

    title: str
    template: str
    context: Mapping[str, object] = field(default_factory=dict)
    order: int = 100


@dataclass(frozen=True)
class TextEntity:
    """A span of a text that a plugin recognised: ``text[start:end]``, such as ``@alice`` or ``$TSLA``.

    :param kind: what it is (``mention``, ``hashtag``, ``url``, ``cashtag``).
    :param href: where it links; the span's own text, escaped, is the link text.
    :param html: markup to show instead of a plain link (a price chip); the
        plugin vouches that it is safe. Left None, the kernel makes the link.
    :param data: what a client may need besides (a user's name, a price).
    """

    start: int
    end: int
    kind: str
    href: str | None = None
    html: str | None = None
    data: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    """A subcommand of ``everything <plugin>``, such as ``everything payments audit``.

    :param name: the word after the plugin's name.
    :param help: one line for ``--help``.
    :param run: called as ``run(kernel, args)`` with the booted kernel and the
        parsed arguments; returns the exit status (0 for success).
    :param arguments: adds the command's own arguments to its
        ``argparse.ArgumentParser``; ``--config`` and ``--data-dir`` are always there.
    """

    name: str
    help: str
    run: Callable[[Kernel, argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
