"""The entities the feed recognises in text: @mentions, #hashtags and URLs."""

from __future__ import annotations

import re
from urllib.parse import quote

from markupsafe import Markup

from kernel import Kernel, TextEntity

# As on X: a mention is @ and a username, not preceded by a word character (so e-mail addresses don't count).
MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{4,15})(?![A-Za-z0-9_])")
# A hashtag starts with a letter after '#', and may hold letters, digits and underscores of any script.
HASHTAG = re.compile(r"(?<![\w#&])#([^\W\d_][\w]{0,99})", re.UNICODE)
# A cashtag is $ and 1 to 6 letters ending a word, not after a word character or another $: $TSLA, $btc.
# The feed indexes every one (a trading plugin decides which are known symbols and draws them).
CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6})\b")
# http(s) links only: a bare "javascript:" or "data:" never becomes a link.
URL = re.compile(r"\bhttps?://[^\s<>\"']+", re.IGNORECASE)
TRAILING_PUNCTUATION = ".,;:!?)]}'\""


def find_urls(text: str) -> list[TextEntity]:
    found = []
    for match in URL.finditer(text):
        end = match.end()
        while end > match.start() and text[end - 1] in TRAILING_PUNCTUATION:
            end -= 1
        url = text[match.start():end]
        # Other people's links: no referrer credit for spam, no hold on this window.
        html = Markup('<a href="{}" class="entity url" rel="nofollow noopener ugc" target="_blank">{}</a>').format(url, url)
        found.append(TextEntity(match.start(), end, "url", href=url, html=str(html), data={"url": url}))
    return found


def find_hashtags(text: str) -> list[TextEntity]:
    return [
        TextEntity(match.start(), match.end(), "hashtag", href=f"/feed/hashtags/{quote(match.group(1).lower())}", data={"tag": match.group(1).lower()})
        for match in HASHTAG.finditer(text)
    ]


def mention_names(text: str) -> list[str]:
    """The usernames written as @mentions, in order, each once (case as written)."""
    seen: dict[str, str] = {}
    for match in MENTION.finditer(text):
        seen.setdefault(match.group(1).lower(), match.group(1))
    return list(seen.values())


def find_mentions(kernel: Kernel, text: str) -> list[TextEntity]:
    """@name for every name that is an account; others stay plain text."""
    found = []
    for match in MENTION.finditer(text):
        user = kernel.user(match.group(1))
        if user is not None:
            found.append(TextEntity(match.start(), match.end(), "mention", href=f"/@{user.username}", data={"username": user.username}))
    return found
