"""Feed: posts, long-form posts, replies, likes, reposts, quotes, timelines, mentions and hashtags.

Media attachments, the pages and the live "new posts" bar come next
(docs/feed.md says what is done).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request

from kernel import Feature, Kernel, Manifest, NavItem, ProfileSection, SandboxWorld, TextEntity, User, hookimpl
from plugins.feed import api, entities, pages, seed
from plugins.feed.posts import FEED, Feed
from plugins.feed.settings import FeedSettings

__version__ = "0.2.0"
HERE = Path(__file__).parent


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="feed",
        title="Posts",
        version=__version__,
        description="Posts, replies, likes, reposts and timelines, with mentions and hashtags.",
        migrations=HERE / "migrations",
        settings_model=FeedSettings,
        templates=HERE / "templates",
        static=HERE / "static",
    )


@hookimpl
def register_features() -> list[Feature]:
    return [
        Feature("feed.post", "Posts", "Write posts of up to 280 characters, reply, like and repost.", plan="free"),
        Feature(
            "feed.longform",
            "Long posts",
            "Write posts of up to 25,000 characters.",
            plan="premium",
            upsell="Posts longer than 280 characters are a premium feature. Subscribe to gain access.",
        ),
        Feature("feed.longvideo", "Long videos", "Attach videos longer than 2 minutes or larger than 50 MB.", plan="premium"),
    ]


@hookimpl
def register_routes(kernel: Kernel) -> list:
    feed = FEED.put(kernel, Feed(kernel))
    # Room for the largest video and its multipart framing.
    kernel.allow_large_bodies("/api/feed/media", feed.media.limits.max_video_bytes + 64 * 1024)
    return [*api.routes, *pages.routes]


@hookimpl
def text_entities(kernel: Kernel, text: str) -> list[TextEntity]:
    return [*entities.find_mentions(kernel, text), *entities.find_hashtags(text), *entities.find_urls(text)]


@hookimpl
def nav_items(user: User | None) -> list[NavItem]:
    items = [NavItem("Explore", "/feed/explore", order=20)]
    if user is not None:
        items.insert(0, NavItem("Home", "/feed/", order=10, requires_login=True))
    return items


@hookimpl
async def profile_sections(request: Request, viewer: User | None, profile: User) -> list[ProfileSection]:
    return await pages.profile_section(request, viewer, profile)


@hookimpl
async def seed_sandbox(kernel: Kernel, world: SandboxWorld) -> None:
    """A few days of the cast's posts, replies, likes and reposts (plugins/feed/seed.py)."""
    await seed.seed(kernel, world)
