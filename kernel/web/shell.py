"""The web shell around every page: the templates (the kernel's layout and each plugin's folder) and the static files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jinja2
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from kernel.plugin.manager import PluginRecord
from kernel.web.routing import PluginGate

WEB_DIR = Path(__file__).parent


def make_templates(records: Iterable[PluginRecord]) -> Jinja2Templates:
    """The kernel's templates by name (``base.html``), and each plugin's under its name (``calls/call.html``)."""
    plugin_loaders: dict[str, jinja2.BaseLoader] = {
        record.name: jinja2.FileSystemLoader(record.manifest.templates)
        for record in records
        if record.manifest and record.manifest.templates
    }
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(WEB_DIR / "templates"), jinja2.PrefixLoader(plugin_loaders)])
    env = jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.globals["feature"] = _feature_in_template
    return Jinja2Templates(env=env)


def static_routes(records: Iterable[PluginRecord]) -> list[BaseRoute]:
    """``/static/kernel/`` and, for each plugin with a static folder, ``/static/plugins/<name>/`` (404 while it is not running)."""
    routes: list[BaseRoute] = [Mount("/static/kernel", StaticFiles(directory=WEB_DIR / "static"), name="static")]
    for record in records:
        if record.manifest and record.manifest.static:
            files = PluginGate(StaticFiles(directory=record.manifest.static), record)
            routes.append(Mount(f"/static/plugins/{record.name}", files))
    return routes


@jinja2.pass_context
def _feature_in_template(context: jinja2.runtime.Context, key: str) -> Any:
    """``feature('calls.video')`` in a template: the check for the viewer, truthy when allowed,
    with ``.locked``, ``.plan``, ``.upgrade_url`` and ``.message`` otherwise."""
    return context["kernel"].entitlements.check(context.get("user"), key)
