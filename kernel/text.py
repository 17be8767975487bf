"""Showing a user's text: recognised entities become links or plugin markup, everything else is escaped."""

from __future__ import annotations

from typing import TYPE_CHECKING

from markupsafe import Markup, escape

from kernel.plugin.answers import collect
from kernel.plugin.contract import TextEntity

if TYPE_CHECKING:
    from kernel.app import Kernel


def pick_entities(text: str, found: list[TextEntity]) -> list[TextEntity]:
    """The entities to show, in order, none overlapping: the earliest start wins, then the longest span."""
    chosen: list[TextEntity] = []
    position = 0
    for entity in sorted(found, key=lambda e: (e.start, -(e.end - e.start))):
        if entity.start >= position and 0 <= entity.start < entity.end <= len(text):
            chosen.append(entity)
            position = entity.end
    return chosen


def render_text(kernel: Kernel, text: str) -> tuple[Markup, list[TextEntity]]:
    """The text as HTML, with every running plugin's entities (the ``text_entities`` hook), and those entities."""
    found = [item for item in collect(kernel.plugins.hook.text_entities(kernel=kernel, text=text)) if isinstance(item, TextEntity)]
    entities = pick_entities(text, found)
    parts: list[str] = []
    position = 0
    for entity in entities:
        parts.append(escape(text[position:entity.start]))
        span = text[entity.start:entity.end]
        if entity.html is not None:
            parts.append(Markup(entity.html))
        elif entity.href is not None:
            parts.append(Markup('<a href="{}" class="entity {}">{}</a>').format(entity.href, entity.kind, span))
        else:
            parts.append(escape(span))
        position = entity.end
    parts.append(escape(text[position:]))
    return Markup("").join(parts).replace("\n", Markup("<br>")), entities
