"""Trading: cashtags, quotes, watchlists and paper trading, over a market data provider.

The embedded provider is a deterministic simulated market
(:mod:`plugins.trading.simulated`); every answer says so. Free users see
quotes delayed by 15 minutes; real-time quotes are the premium feature
``trading.realtime``. docs/trading.md has the API and the choices.
"""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
from starlette.requests import Request

from kernel import (
    Connection,
    Feature,
    Kernel,
    Manifest,
    NavItem,
    ProfileSection,
    SandboxWorld,
    TextEntity,
    User,
    get_kernel,
    hookimpl,
)
from plugins.trading import api, cashtags, pages, realtime_handlers, seed
from plugins.trading.service import TRADING, Trading
from plugins.trading.settings import TradingSettings

__version__ = "0.2.0"
HERE = Path(__file__).parent


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="trading",
        title="Trading",
        version=__version__,
        description="Cashtags, quotes, watchlists and paper trading.",
        settings_model=TradingSettings,
        migrations=HERE / "migrations",
        templates=HERE / "templates",
        static=HERE / "static",
    )


@hookimpl
def register_features() -> list[Feature]:
    return [
        Feature(
            "trading.realtime",
            "Real-time quotes",
            "Prices as they move, instead of 15 minutes late.",
            plan="premium",
            upsell="Real-time quotes are a premium feature. Subscribe to gain access.",
        ),
    ]


@hookimpl
def register_routes(kernel: Kernel) -> list:
    TRADING.put(kernel, Trading(kernel, kernel.plugin_settings("trading")))
    return [*api.routes, *pages.routes]


@hookimpl
def register_realtime(kernel: Kernel) -> dict:
    trading = TRADING.of(kernel)
    return realtime_handlers.handlers(trading.ticker, trading.settings.max_subscriptions)


@hookimpl
async def startup(kernel: Kernel) -> None:
    TRADING.of(kernel).matcher.job.start()


@hookimpl
async def shutdown(kernel: Kernel) -> None:
    await TRADING.of(kernel).matcher.job.stop()
    await TRADING.of(kernel).ticker.stop()


@hookimpl
def realtime_disconnected(connection: Connection) -> None:
    TRADING.of(connection.kernel).ticker.forget(connection)



@hookimpl
def text_entities(kernel: Kernel, text: str) -> list[TextEntity]:
    return cashtags.text_entities(kernel, text)


@hookimpl
async def post_widgets(request: Request, viewer: User | None, post: dict) -> list[ProfileSection]:
    return await anyio.to_thread.run_sync(cashtags.cards, get_kernel(request), viewer, str(post.get("text", "")))


@hookimpl
def nav_items(user: User | None) -> list[NavItem]:
    return pages.nav_items(user)


@hookimpl
def page_assets(request: Request, user: User | None) -> list[str]:
    return pages.page_assets(request, user)


@hookimpl
async def seed_sandbox(kernel: Kernel, world: SandboxWorld) -> None:
    """Watchlists and paper positions for most of the cast (plugins/trading/seed.py)."""
    await seed.seed(kernel, world)
