"""Meta-tests of the plugin contract: every hook is documented and exercised."""

from __future__ import annotations

import inspect
import io
import random
import time
from pathlib import Path

import pytest

from kernel import SandboxWorld, create_app, utcnow
from kernel.cli import run_plugin_command
from kernel.plugin import hookspecs
from kernel.plugin.manager import BUNDLED_PLUGINS
from sandbox.deployment import seed_plugins
from tests.conftest import make_operator, make_settings, running, sign_up
from tests.plugin_fixtures import recorder

HOOKS = sorted(
    name for name, value in vars(hookspecs).items() if inspect.isfunction(value) and hasattr(value, "everything_spec")
)


def test_the_contract_declares_hooks() -> None:
    assert {"manifest", "register_features", "register_routes", "startup", "shutdown"} <= set(HOOKS)


def test_every_hookspec_has_a_docstring_saying_when_it_runs() -> None:
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 80, f"hook {name} needs a docstring"
        assert "Called" in doc, f"hook {name}'s docstring must say when it is called"


def test_the_recorder_plugin_implements_every_hook() -> None:
    assert all(hasattr(recorder, name) for name in HOOKS), "the recorder must exercise every hook"


def test_every_hook_is_called_in_a_running_deployment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(tmp_path / "data", plugins={"enabled": [*BUNDLED_PLUGINS, "recorder"]})
    app = create_app(settings, plugins={"recorder": "tests.plugin_fixtures.recorder"})
    kernel = app.state.kernel
    with running(app):
        visitor = sign_up(app, "visitor")
        sign_up(app, "visited")
        assert visitor.get("/@visited", headers={"accept": "text/html"}).status_code == 200
        assert visitor.get("/premium", headers={"accept": "text/html"}).status_code == 200  # subscribe_url
        assert visitor.get("/settings", headers={"accept": "text/html"}).status_code == 200  # settings_sections
        with visitor.websocket_connect("/ws") as ws:  # realtime_connected, realtime_disconnected
            assert ws.receive_json()["type"] == "kernel.hello"
        # The socket's closing reaches plugins once the server has noticed it.
        deadline = time.monotonic() + 5
        while not any(call.startswith("realtime_disconnected") for call in recorder.calls(kernel)) and time.monotonic() < deadline:
            time.sleep(0.01)
        operator = make_operator(app, "oscar")
        operator.post("/api/admin/users/visitor/grants", json={"plan": "premium"})  # entitlements_changed
        operator.post("/api/admin/plugins/calls/disable")  # plugin_switched
        posted = visitor.post("/api/feed/posts", json={"text": "hello"})  # text_entities
        assert posted.status_code == 201
        page = visitor.get(f"/feed/posts/{posted.json()['id']}", headers={"accept": "text/html"})  # post_widgets
        assert page.status_code == 200
        # seed_sandbox: the sandbox's seeding asks every running plugin (here with an empty cast).
        world = SandboxWorld(kernel=kernel, url="http://testserver", password="unused", people=(), users={}, now=utcnow(),
                             random=random.Random(1))
        errors = io.StringIO()
        app.state.test_portal.call(seed_plugins, kernel, world, errors)
        assert "recorder: seeded after 0 people" in world.notes
        assert errors.getvalue() == ""  # every bundled plugin copes with an empty cast
    called = {call.split(":")[0] for call in recorder.calls(kernel)}
    # register_commands runs in the command line's own kernel, which says which hooks it saw.
    config = tmp_path / "everything.toml"
    config.write_text(f"[plugins]\nenabled = {[*BUNDLED_PLUGINS, 'recorder']!r}\n")
    words = ["recorder", "say", "hi", "--data-dir", str(tmp_path / "data"), "--config", str(config)]
    assert run_plugin_command(words, plugins={"recorder": "tests.plugin_fixtures.recorder"}) == 0
    said = capsys.readouterr().out
    assert said.startswith("recorder says hi;") and "register_commands" in said
    called.add("register_commands")
    # manifest is read before the kernel exists, so the plugin list proves it instead.
    assert kernel.plugins.records["recorder"].manifest.version == "1.2.3"
    assert called | {"manifest"} == set(HOOKS)
    assert "user_created:visitor" in recorder.calls(kernel)


def test_the_plugin_guide_lists_every_hook() -> None:
    guide = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text()
    for name in HOOKS:
        assert f"`{name}(" in guide, f"docs/plugins.md does not document {name}"
