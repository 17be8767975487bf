"""sandbox/example_plugin, a third-party plugin in its own package: installed, discovered, enabled, disabled, checked, and its own tests run with the kit."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.plugin.manager import BUNDLED_PLUGINS
from tests.sandbox_process import sandbox_env, started

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "sandbox" / "example_plugin"
WITH_POLLS = ",".join([*BUNDLED_PLUGINS, "polls"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The plugin installed (as pip installs any package, entry point and all) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    # Built from a copy: the build writes beside the sources, and test workers may build at once.
    source = tmp_path_factory.mktemp("source") / "example_plugin"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    yield target


def everything(site: Path, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kernel.cli", *args], cwd=cwd, env={**sandbox_env([site]), **(env or {})}, capture_output=True, text=True, timeout=120
    )


def states(site: Path, tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, dict]:
    result = everything(site, "plugins", "--json", "--data-dir", str(tmp_path / "data"), env=env)
    assert result.returncode == 0, result.stderr
    return {record["name"]: record for record in json.loads(result.stdout)}


def test_the_plugin_depends_on_the_distribution_that_provides_the_kernel(site: Path) -> None:
    # On the package index "everything" is another project: a plugin naming it would install the wrong thing.
    polls = importlib.metadata.Distribution.at(next(site.glob("everything_polls-*.dist-info")))
    required = {re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0] for requirement in polls.requires or []}
    assert required == {"everything-kernel"}
    ours = importlib.metadata.distribution("everything-kernel")
    assert [(point.name, point.value) for point in ours.entry_points if point.group == "console_scripts"] == [("everything", "kernel.cli:main")]


def test_an_installed_plugin_is_discovered_by_its_entry_point_and_waits_to_be_enabled(site: Path, tmp_path: Path) -> None:
    record = states(site, tmp_path)["polls"]
    assert record["state"] == "disabled" and record["version"] == "1.0.0"


def test_an_operator_enables_it_in_the_settings(site: Path, tmp_path: Path) -> None:
    assert states(site, tmp_path, env={"EVERYTHING_PLUGINS__ENABLED": WITH_POLLS})["polls"]["state"] == "enabled"


def test_an_operator_switches_it_off_at_run_time(site: Path, tmp_path: Path) -> None:
    env = {"EVERYTHING_PLUGINS__ENABLED": WITH_POLLS}
    assert everything(site, "db", "upgrade", "--data-dir", str(tmp_path / "data"), env=env).returncode == 0
    switched = everything(site, "plugins", "disable", "polls", "--data-dir", str(tmp_path / "data"), env=env)
    assert switched.returncode == 0, switched.stderr
    assert states(site, tmp_path, env=env)["polls"]["state"] == "off"


def test_it_keeps_the_contract(site: Path) -> None:
    result = everything(site, "plugins", "check", "polls")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the plugin keeps the contract" in result.stdout


def test_its_own_tests_pass_with_the_kit(site: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n0", str(PLUGIN / "tests")],
        cwd=PLUGIN,
        env=sandbox_env([site]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "5 passed" in result.stdout


@pytest.mark.xdist_group("sandbox")  # sandboxes run one at a time
def test_it_adds_its_part_to_the_sandbox_world(site: Path, tmp_path: Path) -> None:
    with started(tmp_path, settings='[plugins]\nenabled = ["feed", "polls"]\n', paths=[site]) as sandbox:
        [note] = [line for line in sandbox.output if line.strip().startswith("polls: ")]
        poll_id = note.rsplit("/polls/", 1)[1]
        with sandbox.client("sam_rivera") as sam:
            poll = sam.get(f"/api/polls/polls/{poll_id}").json()
        assert poll["question"] == "What's for lunch?"
        assert sum(option["votes"] for option in poll["options"]) == 8
