"""``everything plugins check NAME|PATH``: does a plugin keep the contract?

The check boots a throwaway deployment (a temporary folder, the embedded
database, the bundled plugins and this one) and asks the kernel what it
thought of the plugin: the kernel itself refuses a plugin whose manifest is
invalid, whose hooks are misspelled, whose routes leave its namespace, whose
features clash or whose migrations fail. Then it looks at what the kernel
does not: every feature has a title and a description, every page template
extends the base layout, and every table of the plugin's ``models`` module
exists once its migrations ran.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import sqlalchemy

from kernel.plugin.contract import Feature
from kernel.plugin.manager import BUNDLED_PLUGINS
from kernel.settings import Settings, throwaway

if TYPE_CHECKING:
    from kernel.app import Kernel

# A page template names the base layout; a fragment (included, or fetched by a script) has no <html> and no blocks.
EXTENDS_BASE = re.compile(r"""{%-?\s*extends\s+["']base\.html["']""")
PAGE_MARKERS = re.compile(r"<html|<body|{%-?\s*block\s", re.IGNORECASE)


@dataclass
class Report:
    """What the check found: passed checks and breaches, each one line."""

    plugin: str
    passed: list[str] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)

    def ok(self, line: str) -> None:
        self.passed.append(line)

    def breach(self, line: str) -> None:
        self.breaches.append(line)

    def text(self) -> str:
        lines = [f"plugin {self.plugin}:"]
        lines += [f"  ok    {line}" for line in self.passed]
        lines += [f"  FAIL  {line}" for line in self.breaches]
        lines.append(f"{len(self.breaches)} breach(es)" if self.breaches else "the plugin keeps the contract")
        return "\n".join(lines)


def load_target(target: str) -> tuple[str | None, ModuleType | None]:
    """A plugin by name (bundled or installed: the kernel discovers it) or by path to its module or package folder."""
    path = Path(target)
    if not path.exists():
        return target, None
    if path.is_dir():
        path = path / "__init__.py"
    spec = importlib.util.spec_from_file_location(f"everything_checked_{path.parent.name}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{target}: not a Python module or package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return None, module


def check(target: str, boot: Callable[[Settings, Mapping[str, Any] | None], Kernel]) -> Report:
    """Check the plugin named (or found at) ``target``.

    :param boot: builds a kernel from settings and extra plugins (the CLI passes :class:`kernel.Kernel`).
    """
    name, module = load_target(target)
    if module is not None:
        manifest = module.manifest() if hasattr(module, "manifest") else None
        name = getattr(manifest, "name", None) or Path(target).stem
    assert name is not None
    report = Report(name)
    with tempfile.TemporaryDirectory(prefix="everything-check-") as folder:
        settings = Settings.model_validate({**throwaway(folder), "plugins": {"enabled": sorted({*BUNDLED_PLUGINS, name})}})
        kernel = boot(settings, {name: module} if module is not None else None)
        record = kernel.plugins.records.get(name)
        if record is None:
            report.breach(f"no plugin named {name!r} is installed (give a name or a path)")
            return report
        if not record.running:
            report.breach(f"the kernel refused it: {record.reason}")
            return report
        report.ok("manifest valid, hooks spelled right, routes inside its namespace, features unique")
        kernel.upgrade_database()
        if not kernel.plugins.records[name].running:
            report.breach(f"its migrations failed: {kernel.plugins.records[name].reason}")
            return report
        _check_features(record.features, report)
        _check_templates(record.manifest, report)
        _check_tables(kernel, record.module, report)
        kernel.db.dispose()
    return report


def _check_features(features: list[Feature], report: Report) -> None:
    lacking = [f.key for f in features if not f.title.strip() or not f.description.strip()]
    if lacking:
        report.breach(f"features without a title or a description: {', '.join(lacking)}")
    else:
        report.ok(f"{len(features)} feature(s), each with a title and a description")


def _check_templates(manifest: object, report: Report) -> None:
    folder = getattr(manifest, "templates", None)
    if folder is None:
        report.ok("no templates")
        return
    pages, strays = 0, []
    for template in sorted(Path(folder).rglob("*.html")):
        text = template.read_text(encoding="utf-8")
        if EXTENDS_BASE.search(text):
            pages += 1
        elif PAGE_MARKERS.search(text):
            strays.append(str(template.relative_to(folder)))
    if strays:
        report.breach(f"page templates that do not extend base.html: {', '.join(strays)}")
    else:
        report.ok(f"{pages} page template(s) extend base.html; the others are fragments")


def _check_tables(kernel: Kernel, module: ModuleType | None, report: Report) -> None:
    models = None
    package = getattr(module, "__name__", "")
    if package:
        try:
            models = importlib.import_module(f"{package}.models")
        except ImportError:
            models = None
    metadata = getattr(models, "metadata", None)
    if metadata is None:
        report.ok("no models module with tables")
        return
    present = set(sqlalchemy.inspect(kernel.db.engine).get_table_names())
    missing = sorted(table for table in metadata.tables if table not in present)
    if missing:
        report.breach(f"tables of its models that no migration creates: {', '.join(missing)}")
    else:
        report.ok(f"{len(metadata.tables)} table(s) of its models made by its migrations")
