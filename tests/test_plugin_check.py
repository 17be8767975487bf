"""``everything plugins check NAME|PATH``: a clear report of what a plugin breaks, and exit 1 on any breach."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kernel.plugin.manager import BUNDLED_PLUGINS

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "plugin_fixtures"


def check(target: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kernel.cli", "plugins", "check", str(target)], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("name", BUNDLED_PLUGINS)
def test_every_bundled_plugin_keeps_the_contract(name: str) -> None:
    result = check(name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the plugin keeps the contract" in result.stdout


def test_a_route_outside_the_namespace_is_a_breach(tmp_path: Path) -> None:
    result = check(FIXTURES / "stray_route.py")
    assert result.returncode == 1
    assert "FAIL  the kernel refused it: route '/login' is outside its namespace" in result.stdout


def test_a_misspelled_hook_is_a_breach() -> None:
    result = check(FIXTURES / "misspelled_hook.py")
    assert result.returncode == 1 and "unknown hook" in result.stdout


def test_the_soft_rules_are_each_reported() -> None:
    result = check(FIXTURES / "careless")
    assert result.returncode == 1
    assert "features without a title or a description: careless.thing" in result.stdout
    assert "page templates that do not extend base.html: page.html" in result.stdout
    assert "tables of its models that no migration creates: careless_notes" in result.stdout
    assert "3 breach(es)" in result.stdout


def test_an_unknown_plugin_is_a_breach_said_plainly() -> None:
    result = check("no_such_plugin")
    assert result.returncode == 1 and "no_such_plugin" in result.stdout and "Traceback" not in result.stdout + result.stderr
