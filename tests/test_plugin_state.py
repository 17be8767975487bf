"""kernel.PluginState: a plugin's typed state on each kernel, and another plugin's service only while it runs."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

from kernel import PluginState


def test_a_plugin_finds_the_state_it_put_on_its_kernel(app: Starlette) -> None:
    kernel = app.state.kernel
    notes: PluginState[list[str]] = PluginState("notes_plugin")
    kept = notes.put(kernel, ["first"])
    assert notes.of(kernel) is kept
    assert PluginState("notes_plugin").of(kernel) == ["first"]  # the name is the key, whichever object asks


def test_state_nobody_put_is_a_lookup_error_naming_the_plugin(app: Starlette) -> None:
    with pytest.raises(LookupError, match="plugin 'ghost' keeps no state on this kernel"):
        PluginState("ghost").of(app.state.kernel)


def test_another_plugins_service_is_reached_only_while_that_plugin_runs(app: Starlette) -> None:
    kernel = app.state.kernel
    feed: PluginState[object] = PluginState("feed")
    assert feed.get(kernel) is feed.of(kernel)  # the feed runs: its service
    app.state.test_portal.call(kernel.switch_plugin, "feed", False, "test")
    assert feed.get(kernel) is None  # switched off: nobody may use it
    assert PluginState("ghost").get(kernel) is None  # never installed


def test_two_kernels_in_one_process_keep_their_own_state(app: Starlette, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kernel import create_app
    from tests.conftest import make_settings

    other = create_app(make_settings(tmp_path / "other")).state.kernel
    counter: PluginState[dict[str, int]] = PluginState("counter")
    counter.put(app.state.kernel, {"n": 1})
    counter.put(other, {"n": 2})
    assert counter.of(app.state.kernel) == {"n": 1} and counter.of(other) == {"n": 2}
    other.db.dispose()
