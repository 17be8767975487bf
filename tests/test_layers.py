"""The kernel's layering and the plugin rules, checked on every module's imports.

Every import counts, at the top of a module or inside a function, except
those under ``if TYPE_CHECKING:`` (annotations only, never run) where a
rule says "at run time". A package's ``__init__`` is not counted as run by
importing one of its modules: Python only needs it to have begun.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kernel

ROOT = Path(__file__).resolve().parent.parent
# Where each tree's modules live, and the name its modules are imported by.
TREES = [(ROOT / "kernel", "kernel"), (ROOT / "plugins", "plugins"), (ROOT / "sandbox", "sandbox")]
EXAMPLE_PLUGIN = (ROOT / "sandbox" / "example_plugin" / "everything_polls", "everything_polls")

# The composition root builds everything; the facade re-exports it; the CLI runs it.
MAY_IMPORT_APP = {"kernel", "kernel.cli"}
# The plugin machinery that calls into plugins and the web layer's routes; the rest of kernel.plugin
# (the contract's types, hookspecs, PluginState, reading answers) is as low as the domain services.
PLUGIN_MACHINERY = {"kernel.plugin.manager", "kernel.plugin.builtin_hooks", "kernel.plugin.check"}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    at_run_time: bool

    def __str__(self) -> str:
        when = "" if self.at_run_time else " (under TYPE_CHECKING)"
        return f"{self.importer} imports {self.imported}, line {self.line}{when}"


def module_files() -> dict[str, Path]:
    """Every module of the project's packages by its import name."""
    found: dict[str, Path] = {}
    for folder, name in [*TREES, EXAMPLE_PLUGIN]:
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if "example_plugin" in parts and name != EXAMPLE_PLUGIN[1]:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((name, *parts))] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST, at_run_time: bool = True) -> Iterator[tuple[ast.stmt, bool]]:
    """Every import statement in ``tree``, with whether it runs (False under ``if TYPE_CHECKING:``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, at_run_time
        elif isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.body:
                yield from _statements(ast.Module(body=[child], type_ignores=[]), False)
            for child in node.orelse:
                yield from _statements(ast.Module(body=[child], type_ignores=[]), at_run_time)
        else:
            yield from _statements(node, at_run_time)


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """What module ``name`` imports of the project's own modules."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node, at_run_time in _statements(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; `from module import name`, the module.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            edge = Import(name, target, node.lineno, at_run_time)
            if target and target != name and edge not in found:
                found.append(edge)
    return found


def all_imports() -> list[Import]:
    files = module_files()
    known = set(files)
    return [item for name, path in files.items() for item in imports_of(name, path, known)]


def cycles(edges: list[Import]) -> list[list[str]]:
    """The import cycles among run-time imports (Tarjan's strongly connected components of two or more modules)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if edge.at_run_time:
            graph.setdefault(edge.importer, set()).add(edge.imported)
            graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _plugin_of(module: str) -> str | None:
    if module.startswith("plugins."):
        return module.split(".")[1]
    if _within(module, "everything_polls"):
        return "everything_polls"
    return None


def _is_domain(module: str) -> bool:
    """A module at the top of ``kernel/``: a domain service (settings, identity, accounts ...)."""
    return module.count(".") == 1 and module.startswith("kernel.") and module not in ("kernel.app", "kernel.cli")


def layer(module: str) -> int | None:
    """A kernel module's layer, lowest first (docs/architecture.md); None outside the kernel."""
    if module in ("kernel", "kernel.app", "kernel.cli"):
        return 5  # the facade, the composition root, the CLI
    if _within(module, "kernel.realtime"):
        return 4  # its endpoint reads the request as routes do
    if _within(module, "kernel.web"):
        return 3
    if module in PLUGIN_MACHINERY:
        return 2
    if _within(module, "kernel.storage"):
        return 0
    return 1 if _within(module, "kernel") else None  # domain services and the contract's plain parts


def test_kernel_imports_only_go_down_the_layers() -> None:
    offending = []
    for edge in all_imports():
        mine, theirs = layer(edge.importer), layer(edge.imported)
        if edge.at_run_time and mine is not None and theirs is not None and mine < theirs:
            offending.append(f"{edge} (layer {mine} below {theirs})")
    assert not offending, "\n".join(offending)


def test_importing_one_layer_loads_nothing_above_it() -> None:
    """The facade imports its names on first use: a plugin's ``hookimpl`` or the storage layer does not pull in the kernel."""
    probe = (
        "import sys; import kernel.storage.models; from kernel import Manifest, hookimpl; "
        "print(sorted(name for name in sys.modules if name in ('kernel.app', 'kernel.web', 'kernel.realtime', 'aiortc')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_facade_exports_exactly_what_it_declares_for_type_checkers() -> None:
    tree = ast.parse((ROOT / "kernel" / "__init__.py").read_text(encoding="utf-8"))
    declared = {
        alias.name: node.module
        for node, at_run_time in _statements(tree)
        if isinstance(node, ast.ImportFrom) and not at_run_time
        for alias in node.names
    }
    assert declared.keys() == set(kernel.__all__)
    assert kernel._EXPORTS == declared
    for name in kernel.__all__:
        getattr(kernel, name)  # each resolves in the module the facade names


def test_the_project_has_no_import_cycle() -> None:
    found = cycles(all_imports())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_only_the_facade_and_the_cli_import_the_composition_root_at_run_time() -> None:
    offending = [edge for edge in all_imports() if edge.imported == "kernel.app" and edge.at_run_time and edge.importer not in MAY_IMPORT_APP]
    assert not offending, "\n".join(map(str, offending))


def test_domain_services_import_neither_the_web_nor_the_realtime_layer() -> None:
    offending = [
        edge
        for edge in all_imports()
        if _is_domain(edge.importer) and (_within(edge.imported, "kernel.web") or _within(edge.imported, "kernel.realtime"))
    ]
    assert not offending, "\n".join(map(str, offending))


def test_the_plugin_layer_imports_neither_the_web_nor_the_realtime_layer_at_run_time() -> None:
    # The contract's documentation names their types (a realtime Connection) for annotations only.
    offending = [
        edge
        for edge in all_imports()
        if edge.at_run_time
        and _within(edge.importer, "kernel.plugin")
        and (_within(edge.imported, "kernel.web") or _within(edge.imported, "kernel.realtime"))
    ]
    assert not offending, "\n".join(map(str, offending))


def test_storage_imports_nothing_else_of_the_kernel() -> None:
    offending = [
        edge
        for edge in all_imports()
        if _within(edge.importer, "kernel.storage") and _within(edge.imported, "kernel") and not _within(edge.imported, "kernel.storage")
    ]
    assert not offending, "\n".join(map(str, offending))


def test_no_plugin_imports_another_plugin() -> None:
    offending = []
    for edge in all_imports():
        mine, theirs = _plugin_of(edge.importer), _plugin_of(edge.imported)
        if mine is not None and theirs is not None and mine != theirs:
            offending.append(edge)
    assert not offending, "\n".join(map(str, offending))


def test_plugins_import_only_the_kernels_public_api() -> None:
    offending = [
        edge for edge in all_imports() if _plugin_of(edge.importer) is not None and _within(edge.imported, "kernel") and edge.imported != "kernel"
    ]
    assert not offending, "\n".join(map(str, offending))


def test_the_check_sees_cycles_and_imports_inside_functions(tmp_path: Path) -> None:
    """The walker itself: an import inside a function counts, one under TYPE_CHECKING does not run."""
    module = tmp_path / "probe.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from kernel.app import Kernel\n"
        "def later():\n    from kernel.web import pages\n"
    )
    found = imports_of("kernel.probe", module, {"kernel.app", "kernel.web", "kernel.web.pages"})
    assert [(edge.imported, edge.at_run_time) for edge in found] == [("kernel.app", False), ("kernel.web.pages", True)]
    edges = [Import("a", "b", 1, True), Import("b", "c", 1, True), Import("c", "a", 1, True), Import("c", "d", 1, False), Import("d", "c", 1, True)]
    assert cycles(edges) == [["a", "b", "c"]]
