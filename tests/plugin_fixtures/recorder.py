"""A well-behaved plugin implementing every hook and recording each call on the kernel it serves."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import (
    ApiError,
    Command,
    Connection,
    Feature,
    Grant,
    JSONResponse,
    Kernel,
    Manifest,
    NavItem,
    PluginState,
    ProfileAction,
    ProfileSection,
    SandboxWorld,
    TextEntity,
    User,
    feature_required,
    get_kernel,
    hookimpl,
    realtime_feature_required,
    render,
)


class RecorderSettings(BaseModel):
    greeting: str = "hello"


RECORDED: PluginState[list[str]] = PluginState("recorder")


def calls(kernel: Kernel) -> list[str]:
    """The hooks called so far on ``kernel``, in order (the manifest is read before there is a kernel)."""
    try:
        return RECORDED.of(kernel)
    except LookupError:
        return RECORDED.put(kernel, [])


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="recorder",
        title="Recorder",
        version="1.2.3",
        description="Records every hook call.",
        settings_model=RecorderSettings,
        templates=Path(__file__).parent / "recorder_templates",
        static=Path(__file__).parent / "recorder_static",
    )


@hookimpl
def register_features(kernel: Kernel) -> list[Feature]:
    calls(kernel).append("register_features")
    return [
        Feature("recorder.echo", "Echo", "Says things back.", plan="free"),
        Feature("recorder.shout", "Shouting", "Says things back, loudly, to every tab.", plan="premium"),
    ]


async def echo(connection: Connection, message: dict) -> dict:
    return {"said": message.get("text")}


@realtime_feature_required("recorder.shout")
async def shout(connection: Connection, message: dict) -> None:
    await connection.kernel.realtime.send_to_user(connection.user, {"type": "recorder.shouted", "text": str(message.get("text")).upper()})


async def poke(connection: Connection, message: dict) -> dict:
    """Send a message to another user, by username."""
    kernel = connection.kernel
    other = kernel.user(str(message.get("to", "")))
    if other is None:
        raise ApiError(404, "unknown_user", "No such user.")
    await kernel.realtime.send_to_user(other, {"type": "recorder.poked", "by": connection.user.username})
    return {"delivered": True}


async def notify(connection: Connection, message: dict) -> dict:
    """Notify the sender through the kernel's service, as a plugin would."""
    item = await connection.kernel.notifications.notify(connection.user, "recorder.note", str(message.get("text")), url="/recorder/")
    return {"notification": item["id"]}


async def flood(connection: Connection, message: dict) -> dict:
    """Send ``count`` messages of ``size`` characters to user ``to``: a way to fill a slow client's queue."""
    kernel = connection.kernel
    other = kernel.user(str(message.get("to", "")))
    if other is None:
        raise ApiError(404, "unknown_user", "No such user.")
    padding = "x" * int(message.get("size", 1000))
    for number in range(int(message.get("count", 1))):
        await kernel.realtime.send_to_user(other, {"type": "recorder.flooded", "n": number, "padding": padding})
    return {"sent": int(message.get("count", 1))}


async def whisper(connection: Connection, message: dict) -> dict:
    """Send a message to one connection, by its key; the answer says which connection sent it."""
    await connection.kernel.realtime.send_to_connection(str(message.get("to")), {"type": "recorder.whispered", "from": connection.key})
    return {"key": connection.key}


def crash(connection: Connection, message: dict) -> None:
    raise RuntimeError("the recorder's handler broke on purpose")


@hookimpl
def register_realtime(kernel: Kernel) -> dict:
    calls(kernel).append("register_realtime")
    return {
        "recorder.echo": echo,
        "recorder.shout": shout,
        "recorder.poke": poke,
        "recorder.crash": crash,
        "recorder.notify": notify,
        "recorder.flood": flood,
        "recorder.whisper": whisper,
    }


async def ping(request: Request) -> Response:
    kernel = get_kernel(request)
    return JSONResponse({"pong": True, "greeting": kernel.plugin_settings("recorder").greeting})


@feature_required("recorder.shout")
async def premium_only(request: Request) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return render(request, "recorder/page.html", {"message": "Shouting room"})
    return JSONResponse({"shouting": True})


async def explode(request: Request) -> Response:
    raise RuntimeError("the recorder plugin broke on purpose")


async def page(request: Request) -> Response:
    return render(request, "recorder/page.html", {"message": "Recorder page"})


@hookimpl
def register_routes(kernel: Kernel) -> list[Route]:
    calls(kernel).append("register_routes")
    return [
        Route("/api/recorder/ping", ping),
        Route("/api/recorder/explode", explode),
        Route("/recorder/", page),
        Route("/recorder/explode", explode),
        Route("/api/recorder/premium", premium_only),
        Route("/recorder/premium", premium_only),
    ]


@hookimpl
def nav_items(request: Request, user: User | None) -> list[NavItem]:
    calls(get_kernel(request)).append("nav_items")
    return [NavItem("Recorder", "/recorder/", order=50), NavItem("Shout", "/recorder/premium", order=51, feature="recorder.shout")]


@hookimpl
def profile_actions(request: Request, viewer: User | None, profile: User) -> list[ProfileAction]:
    calls(get_kernel(request)).append("profile_actions")
    return [
        ProfileAction(f"Wave at {profile.username}", f"/recorder/?wave={profile.username}", order=30),
        ProfileAction(f"Shout at {profile.username}", "/recorder/premium", order=31, feature="recorder.shout"),
    ]


@hookimpl
async def profile_sections(request: Request, viewer: User | None, profile: User) -> list[ProfileSection]:
    calls(get_kernel(request)).append("profile_sections")
    return [ProfileSection("Recordings", "recorder/section.html", {"owner": profile.username}, order=50)]


@hookimpl
async def post_widgets(request: Request, viewer: User | None, post: dict) -> list[ProfileSection]:
    calls(get_kernel(request)).append("post_widgets")
    return [ProfileSection("Recorded", "recorder/section.html", {"owner": post["author"]["username"]}, order=50)]


@hookimpl
async def startup(kernel: Kernel) -> None:
    calls(kernel).append("startup")


@hookimpl
async def shutdown(kernel: Kernel) -> None:
    calls(kernel).append("shutdown")


@hookimpl
def subscribe_url(request: Request, user: User | None, plan: str) -> str:
    calls(get_kernel(request)).append("subscribe_url")
    return f"/recorder/?subscribe={plan}"


@hookimpl
def entitlements_changed(kernel: Kernel, user: User, plan: str, change: str, grant: Grant) -> None:
    calls(kernel).append(f"entitlements_changed:{user.username}:{plan}:{change}")


@hookimpl
async def plugin_switched(kernel: Kernel, plugin: str, enabled: bool) -> None:
    calls(kernel).append(f"plugin_switched:{plugin}:{'on' if enabled else 'off'}")


@hookimpl
def text_entities(kernel: Kernel, text: str) -> list[TextEntity]:
    """``~rec`` becomes a badge of the recorder's own markup."""
    calls(kernel).append("text_entities")
    found, start = [], text.find("~rec")
    while start != -1:
        found.append(TextEntity(start, start + 4, "recording", html='<span class="rec">REC</span>'))
        start = text.find("~rec", start + 4)
    return found


@hookimpl
def user_created(kernel: Kernel, user: User) -> None:
    calls(kernel).append(f"user_created:{user.username}")


@hookimpl
def page_assets(request: Request, user: User | None) -> list[str]:
    calls(get_kernel(request)).append("page_assets")
    return ["/static/plugins/recorder/recorder.css", "/static/plugins/recorder/recorder.js", "https://elsewhere.example/x.js"]


@hookimpl
async def settings_sections(request: Request, user: User) -> list[ProfileSection]:
    calls(get_kernel(request)).append("settings_sections")
    return [ProfileSection("Recorder settings", "recorder/section.html", {"owner": user.username}, order=50)]


@hookimpl
def realtime_connected(kernel: Kernel, connection: Connection) -> None:
    calls(kernel).append(f"realtime_connected:{connection.user.username}:{connection.key}")


@hookimpl
async def realtime_disconnected(kernel: Kernel, connection: Connection) -> None:
    calls(kernel).append(f"realtime_disconnected:{connection.user.username}")


def say(kernel: Kernel, args: object) -> int:
    print(f"recorder says {getattr(args, 'words', '')}; hooks so far: {' '.join(calls(kernel))}")
    return 0


@hookimpl
def register_commands(kernel: Kernel) -> list[Command]:
    calls(kernel).append("register_commands")
    return [Command("say", "print the words, and the hooks called so far", say, lambda parser: parser.add_argument("words"))]


@hookimpl
async def seed_sandbox(kernel: Kernel, world: SandboxWorld) -> None:
    calls(kernel).append(f"seed_sandbox:{len(world.users)}")
    world.note(f"recorder: seeded after {len(world.users)} people")
