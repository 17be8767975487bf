"""The feed's pages under ``/feed/``: timelines with a composer, the post page with its thread, hashtags.

Every page works without scripts: forms post to the routes below, which call
the same :class:`~plugins.feed.posts.Feed` methods as the JSON API and
redirect back. ``feed.js`` adds a live character counter, infinite scroll
(``?cursor=…&fragment=1`` answers just the list items) and likes and
reposts without a reload (a form posted with ``fragment=1`` answers just the
post's action bar).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import (
    ApiError,
    Page,
    ProfileSection,
    User,
    collect_async,
    current_user,
    get_kernel,
    login_redirect,
    read_form,
    redirect,
    render,
    safe_next,
)
from plugins.feed import actions
from plugins.feed.actions import feed_of
from plugins.feed.posts import MAX_ID, grapheme_count

PAGE_SIZE = 20
PROFILE_POSTS = 10
MAX_FORM_TEXT = 200_000  # as the API's model: longer is refused before counting


def _fragment(request: Request) -> bool:
    return request.query_params.get("fragment") in ("1", "true")


def _next_url(path: str, cursor: str | None) -> str | None:
    """The "Load more" link: the page at ``path`` from ``cursor`` on."""
    return f"{quote(path)}?{urlencode({'cursor': cursor})}" if cursor else None


def _id_or_none(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID else None


def _form_id(form: dict[str, str], name: str) -> int | None:
    if not form.get(name, "").strip():
        return None
    if (value := _id_or_none(form[name])) is None:
        raise ApiError(422, "unknown_post", f"{name}: no such post", field=name)
    return value


def _composer(text: str = "", error: ApiError | None = None) -> dict[str, Any]:
    return {"text": text, "count": grapheme_count(text), "error": error, "quoted": None}


# Timelines ------------------------------------------------------------------------------------


async def _timeline(
    request: Request,
    path: str,
    fetch: Callable[[str | None], Page],
    context: dict[str, Any],
    status_code: int = 200,
) -> Response:
    """The timeline page at ``path``, or with ``fragment=1`` only its list items (for infinite scroll)."""
    cursor = request.query_params.get("cursor") or None
    page = await anyio.to_thread.run_sync(fetch, cursor)
    items = {"posts": page.results, "next_url": _next_url(path, page.next_cursor), "here": path}
    if _fragment(request):
        return render(request, "feed/items.html", items)
    return render(request, "feed/timeline.html", {**context, **items, "paged": cursor is not None}, status_code)


async def home(request: Request) -> Response:
    """``GET /feed/``: the people one follows and oneself, newest first, under the composer.

    ``?quote_of=ID`` puts that post in the composer, to quote it.
    """
    return await _home(request, None)


async def _home(request: Request, composer: dict[str, Any] | None, status_code: int = 200) -> Response:
    viewer = current_user(request)
    if viewer is None:
        return login_redirect(request, "/feed/")
    feed = feed_of(get_kernel(request))
    if composer is None:
        composer = _composer()
        quote_of = _id_or_none(request.query_params.get("quote_of"))
        if quote_of is not None:
            composer["quoted"] = await anyio.to_thread.run_sync(feed.get, viewer, quote_of)
    context = {"title": "Home", "kind": "home", "composer": composer}
    return await _timeline(request, "/feed/", lambda cursor: feed.home(viewer, cursor, PAGE_SIZE), context, status_code)


async def explore(request: Request) -> Response:
    """``GET /feed/explore``: everyone's recent posts; readable signed out."""
    viewer = current_user(request)
    feed = feed_of(get_kernel(request))
    context = {"title": "Explore", "kind": "explore"}
    return await _timeline(request, "/feed/explore", lambda cursor: feed.explore(viewer, cursor, PAGE_SIZE), context)


async def cashtag(request: Request) -> Response:
    """``GET /feed/cashtags/{symbol}``: the posts mentioning ``$symbol``."""
    viewer = current_user(request)
    feed = feed_of(get_kernel(request))
    symbol = request.path_params["symbol"].lstrip("$").upper()[:16]
    context = {"title": f"${symbol}", "kind": "cashtag", "tag": symbol}
    return await _timeline(request, request.url.path, lambda cursor: feed.by_cashtag(viewer, symbol, cursor, PAGE_SIZE), context)


async def hashtag(request: Request) -> Response:
    """``GET /feed/hashtags/{tag}``: the posts carrying ``#tag``."""
    viewer = current_user(request)
    feed = feed_of(get_kernel(request))
    tag = request.path_params["tag"].lstrip("#")[:100]
    context = {"title": f"#{tag}", "kind": "hashtag", "tag": tag}
    return await _timeline(request, request.url.path, lambda cursor: feed.by_hashtag(viewer, tag, cursor, PAGE_SIZE), context)


async def by_user(request: Request) -> Response:
    """``GET /feed/users/{username}``: a user's posts and reposts (where their profile's "Load more" leads)."""
    kernel = get_kernel(request)
    viewer = current_user(request)
    author = await anyio.to_thread.run_sync(kernel.user, request.path_params["username"])
    if author is None:
        raise ApiError(404, "not_found", f"No user @{request.path_params['username']}.")
    feed = feed_of(kernel)
    context = {"title": f"Posts by @{author.username}", "kind": "user", "author": author}
    return await _timeline(request, f"/feed/users/{author.username}", lambda cursor: feed.by_user(viewer, author, cursor, PAGE_SIZE), context)


async def post_page(request: Request) -> Response:
    """``GET /feed/posts/{id}``: the post, what it answers above, its replies below, and a reply composer."""
    return await _post_page(request, request.path_params["post_id"], None)


async def _post_page(request: Request, post_id: int, composer: dict[str, Any] | None, status_code: int = 200) -> Response:
    viewer = current_user(request)
    feed = feed_of(get_kernel(request))
    # A refused reply form shows the thread's first page again.
    cursor = (request.query_params.get("cursor") or None) if request.method == "GET" else None
    thread = await anyio.to_thread.run_sync(feed.thread, viewer, post_id, cursor, PAGE_SIZE)
    here = f"/feed/posts/{post_id}"
    items = {"posts": thread["replies"], "next_url": _next_url(here, thread["next_cursor"]), "here": here}
    if _fragment(request):
        return render(request, "feed/items.html", items)
    context = {
        "thread": thread,
        "composer": composer or _composer(),
        "paged": cursor is not None,
        "widgets": await _widgets(request, viewer, thread["post"]),
        **items,
    }
    return render(request, "feed/post.html", context, status_code=status_code)


async def _widgets(request: Request, viewer: User | None, post: dict[str, Any]) -> list[ProfileSection]:
    """What plugins show under the post in focus (the ``post_widgets`` hook); a repost shows its original's."""
    original = post.get("repost_of")
    shown = original if original and not original.get("unavailable") else post
    found = await collect_async(get_kernel(request).hook.post_widgets(request=request, viewer=viewer, post=shown))
    return sorted((w for w in found if isinstance(w, ProfileSection)), key=lambda w: (w.order, w.title))


# Forms ----------------------------------------------------------------------------------------


async def create(request: Request) -> Response:
    """``POST /feed/posts`` (text, reply_to?, quote_of?, next?): write a post; a refusal shows the form again, text kept."""
    form = await read_form(request)
    author = current_user(request)
    back = safe_next(form.get("next"), "/feed/")
    if author is None:
        return login_redirect(request, back)
    kernel = get_kernel(request)
    text = form.get("text", "")
    reply_to = quote_of = None
    try:
        reply_to = _form_id(form, "reply_to")
        quote_of = _form_id(form, "quote_of")
        if len(text) > MAX_FORM_TEXT:
            raise ApiError(422, "post_too_long", "text: at most 25,000 characters", field="text")
        post = await actions.publish(kernel, author, text, reply_to, quote_of)
    except ApiError as error:
        return await _refused(request, text, error, reply_to, quote_of)
    new_id = post["id"]
    if reply_to is not None:
        return redirect(f"{safe_next(form.get('next'), f'/feed/posts/{reply_to}')}#post-{new_id}")
    return redirect(safe_next(form.get("next"), f"/feed/posts/{new_id}"))


async def _refused(request: Request, text: str, error: ApiError, reply_to: int | None, quote_of: int | None) -> Response:
    """The page the composer was on, again, with the refusal and the text as written."""
    composer = _composer(text[:MAX_FORM_TEXT], error)
    if reply_to is not None:
        try:
            return await _post_page(request, reply_to, composer, status_code=error.status)
        except ApiError:
            pass  # the post it answers is gone: keep the text on the home page
    if quote_of is not None:
        try:
            composer["quoted"] = await anyio.to_thread.run_sync(feed_of(get_kernel(request)).get, current_user(request), quote_of)
        except ApiError:
            pass
    return await _home(request, composer, status_code=error.status)


async def _acted(request: Request, form: dict[str, str], post: dict[str, Any], default: str) -> Response:
    """After a like or repost: the post's action bar for the script, else back where the form was, at the post."""
    back = safe_next(form.get("next"), default)
    if form.get("fragment") in ("1", "true"):
        return render(request, "feed/actions.html", {"post": post, "here": back})
    return redirect(f"{back.split('#')[0]}#post-{post['id']}")


async def _post_form(request: Request) -> tuple[dict[str, str], User, int] | Response:
    """What every form on a post goes through: the CSRF check, then signing in (coming back to the post)."""
    form = await read_form(request)
    viewer = current_user(request)
    post_id = request.path_params["post_id"]
    if viewer is None:
        return login_redirect(request, f"/feed/posts/{post_id}")
    return form, viewer, post_id


async def like(request: Request) -> Response:
    """``POST /feed/posts/{id}/like`` and ``…/unlike``."""
    checked = await _post_form(request)
    if isinstance(checked, Response):
        return checked
    form, viewer, post_id = checked
    on = request.url.path.endswith("/like")
    post = await anyio.to_thread.run_sync(feed_of(get_kernel(request)).like, viewer, post_id, on)
    return await _acted(request, form, post, f"/feed/posts/{post_id}")


async def repost(request: Request) -> Response:
    """``POST /feed/posts/{id}/repost``: repost once (again is a no-op); its author hears of it."""
    checked = await _post_form(request)
    if isinstance(checked, Response):
        return checked
    form, viewer, post_id = checked
    answer, _ = await actions.repost(get_kernel(request), viewer, post_id)
    original = answer.get("repost_of") or {}
    return await _acted(request, form, original if original.get("author") else answer, f"/feed/posts/{post_id}")


async def delete(request: Request) -> Response:
    """``POST /feed/posts/{id}/delete``: delete one's own post (or undo one's repost); 403 for another's."""
    checked = await _post_form(request)
    if isinstance(checked, Response):
        return checked
    form, viewer, post_id = checked
    reply_to = await anyio.to_thread.run_sync(feed_of(get_kernel(request)).delete, viewer, post_id)
    fallback = f"/feed/posts/{reply_to}" if reply_to else "/feed/"
    back = safe_next(form.get("next"), fallback)
    if back.split("#")[0].split("?")[0] == f"/feed/posts/{post_id}":
        back = fallback  # its own page is gone
    return redirect(back)


# The profile's section ------------------------------------------------------------------------


async def profile_section(request: Request, viewer: User | None, profile: User) -> list[ProfileSection]:
    """The profile owner's latest posts, for the kernel's profile page."""
    kernel = get_kernel(request)
    page = await anyio.to_thread.run_sync(feed_of(kernel).by_user, viewer, profile, None, PROFILE_POSTS)
    if not page.results and viewer is not None and viewer.id != profile.id:
        if await anyio.to_thread.run_sync(kernel.is_blocked, viewer, profile):
            return []  # their posts are hidden, not missing: say nothing rather than "hasn't posted yet"
    more = f"/feed/users/{profile.username}?{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else None
    context = {"posts": page.results, "next_url": more, "profile_username": profile.username}
    return [ProfileSection("Posts", "feed/profile_posts.html", context, order=10)]


routes = [
    Route("/feed/", home, methods=["GET"]),
    Route("/feed/explore", explore, methods=["GET"]),
    Route("/feed/hashtags/{tag}", hashtag, methods=["GET"]),
    Route("/feed/cashtags/{symbol}", cashtag, methods=["GET"]),
    Route("/feed/users/{username}", by_user, methods=["GET"]),
    Route("/feed/posts", create, methods=["POST"]),
    Route("/feed/posts/{post_id:int}", post_page, methods=["GET"]),
    Route("/feed/posts/{post_id:int}/like", like, methods=["POST"]),
    Route("/feed/posts/{post_id:int}/unlike", like, methods=["POST"]),
    Route("/feed/posts/{post_id:int}/repost", repost, methods=["POST"]),
    Route("/feed/posts/{post_id:int}/delete", delete, methods=["POST"]),
]
