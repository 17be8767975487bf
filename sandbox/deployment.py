"""``everything sandbox``: a throwaway deployment in a temporary folder, with a seeded world and bots.

The server is the real one (uvicorn, every bundled plugin, the embedded
SQLite database and in-process bus) over a fresh folder. Once it listens,
the kernel's part of the world is seeded here (the cast of
:mod:`sandbox.cast`, their plans, the operator, follows and contacts), then
every running plugin adds its own through the ``seed_sandbox`` hook. The
logins are printed, bots run until Ctrl+C, and the folder is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import secrets
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import IO

import uvicorn

from kernel import Kernel, SandboxWorld, User, admin, create_app, logs, utcnow
from kernel.settings import Settings, load_settings, throwaway
from sandbox import cast

log = logging.getLogger("sandbox")


class SandboxServer(uvicorn.Server):
    """uvicorn, except that Ctrl+C first stops the bots: they hang up and leave before the server goes.

    Made inside the event loop that serves it.
    """

    stop_requested = False

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        # Set by the first Ctrl+C (or SIGTERM), and when the server ends on its own: the sandbox winds down.
        self.stopping = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stop_requested:  # a second Ctrl+C: stop now
            self.should_exit = self.force_exit = True
        self.stop_requested = True
        # A signal handler interrupts the loop wherever it is: the loop sets the event, woken by this call.
        self._loop.call_soon_threadsafe(self.stopping.set)


def sandbox_settings(folder: Path, config: str | None, host: str, port: int) -> Settings:
    """The deployment's settings: ``config`` when given, always over ``folder`` and the embedded defaults.

    Neither ./everything.toml nor the ``EVERYTHING_*`` environment is read: a
    sandbox must never reach a real database, bus or payment provider.
    ``config`` may choose the plugins (a feature team adds its own), their
    sections and the plans; every bundled plugin runs when it does not.
    """
    if config:
        settings = load_settings(config, environ={}, overrides=throwaway(folder))
    else:
        settings = Settings.model_validate(throwaway(folder))
    settings.server.host, settings.server.port = host, port
    return settings


async def seed_cast(kernel: Kernel, password: str, rng: random.Random) -> dict[str, User]:
    """Sign the cast up as the sign-up page would, then grant plans, make the operator, follows and contacts."""
    users: dict[str, User] = {}
    for person in cast.CAST:
        user = await kernel.accounts.sign_up(person.username, password, person.display_name)
        user = await kernel.accounts.update_profile(user, bio=person.bio)
        for plan in person.plans:
            await kernel.grant(user, plan)
        if person.operator:
            admin.set_admin(kernel, user, True, "sandbox")
        users[person.username] = user
    for follower, followee in cast.follows(rng):
        await kernel.directory.follow(users[follower], users[followee])
    for owner, other, nickname in cast.contacts(rng):
        await kernel.directory.add_contact(users[owner], users[other], nickname)
    return users


async def seed_plugins(kernel: Kernel, world: SandboxWorld, errors: IO[str]) -> None:
    """Let every running plugin seed its part, in plugin order; a plugin that fails is named, and the next goes on."""
    for record in kernel.plugins.running():
        # A generator per plugin: one plugin's draws never shift another's world.
        world.random = random.Random(f"{world.seed}:{record.name}")
        try:
            seeded = kernel.plugins.hook_of(record).seed_sandbox(kernel=kernel, world=world)
            if inspect.isawaitable(seeded):
                await seeded
        except Exception as exc:
            log.exception("sandbox: plugin %s failed while seeding", record.name)
            print(f"warning: plugin {record.name} could not seed all of its part of the sandbox: {exc!r}", file=errors)


def logins_table(world: SandboxWorld) -> str:
    """The people one may log in as, their plans and roles, then the bots and what each plugin seeded."""
    lines = [f"{'LOGIN':<13} {'NAME':<16} {'PLAN':<8} ROLE"]
    for person in world.humans:
        plan = ",".join(person.plans) or "free"
        role = ", ".join(part for part in ("operator" if person.operator else "", "verified" if world.kernel.is_verified(world.users[person.username]) else "") if part)
        lines.append(f"@{person.username:<12} {person.display_name:<16} {plan:<8} {role}".rstrip())
    lines.append("")
    lines.append("Bots (the sandbox drives them; call them or join their Space):")
    lines.extend(f"  @{person.username:<12} {person.bio}" for person in world.bots)
    if world.notes:
        lines.append("")
        lines.append("Seeded:")
        lines.extend(f"  {note}" for note in world.notes)
    return "\n".join(lines)


async def serve_sandbox(settings: Settings, password: str, seed: int, out: IO[str], errors: IO[str]) -> int:
    """Serve, seed, print the logins, and run until Ctrl+C (or SIGTERM); then stop the bots and the server."""
    app = create_app(settings)
    kernel: Kernel = app.state.kernel
    server = SandboxServer(uvicorn.Config(app, host=settings.server.host, port=settings.server.port, log_config=None,
                                          access_log=False, ws_max_size=settings.realtime.max_frame_bytes))
    serving = asyncio.create_task(server.serve())
    serving.add_done_callback(lambda _: server.stopping.set())
    while not server.started:
        if serving.done():
            return 1
        await asyncio.sleep(0.05)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # on every address, the bots and the URL use loopback
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    print(f"Everything sandbox is seeding at {url} ...", file=errors, flush=True)

    world = SandboxWorld(kernel=kernel, url=url, password=password, people=cast.CAST, users={}, now=utcnow(),
                         random=random.Random(seed), seed=seed)

    async def seed_world() -> None:
        world.users.update(await seed_cast(kernel, password, world.random))
        await seed_plugins(kernel, world, errors)

    seeding = asyncio.create_task(seed_world())
    stopped = asyncio.create_task(server.stopping.wait())
    try:
        # Ctrl+C while seeding stops it there, rather than after a table of logins nobody will use.
        await asyncio.wait((seeding, stopped), return_when=asyncio.FIRST_COMPLETED)
        if not seeding.done():
            seeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await seeding
        if not server.stopping.is_set():
            print(f"Everything sandbox: {url}", file=out)
            print(f"Data: {settings.data_dir} (throwaway)", file=out)
            print(f"Password of every login: {password}", file=out)
            print("", file=out)
            print(logins_table(world), file=out)
            print("", file=out)
            print("Ready. Press Ctrl+C to stop.", file=out, flush=True)
        await stopped
    finally:
        stopped.cancel()
        await world.stop_background()
        server.should_exit = True
        await serving
    return 0


def run(host: str, port: int, *, config: str | None = None, keep: bool = False, password: str | None = None, seed: int = 1) -> int:
    """``everything sandbox``: make the folder, serve and seed until stopped, then delete the folder unless ``keep``."""
    folder = Path(tempfile.mkdtemp(prefix="everything-sandbox-"))
    try:
        settings = sandbox_settings(folder, config, host, port)
        # The logins are what a person wants to read; the server's info lines would bury them.
        logs.configure(settings.log.level if config else "WARNING")
        # SIGTERM stops the sandbox as Ctrl+C does, so that the folder is deleted either way.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        return asyncio.run(serve_sandbox(settings, password or secrets.token_urlsafe(9), seed, sys.stdout, sys.stderr))
    except KeyboardInterrupt:
        return 0
    except SystemExit:  # uvicorn's way to give up at start-up, after logging why (a port already in use)
        print("error: the sandbox's server could not start; the reason is above", file=sys.stderr)
        return 1
    finally:
        if keep:
            print(f"The sandbox has stopped; its data is kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            print("The sandbox has stopped and its data is deleted.", file=sys.stderr)
