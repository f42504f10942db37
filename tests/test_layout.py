"""The layout's import rules, read with ``ast`` from shipit's own source: no cluster, no import.

- no import cycles: the module graph has no strongly connected component;
- ``shipit/node/`` imports the standard library, dask, distributed and itself only;
- ``shipit/project/`` (what ships) imports neither distributed nor click;
- only ``shipit/cli/`` imports click;
- every import points one way: the command line, then the library, then ``project/`` and the
  pure core (config, errors, report, text); nothing below imports what is above it.

Every import counts, the ones inside functions and under ``TYPE_CHECKING`` too: a deferred
import hides a cycle, it does not break it.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "shipit"


def _name(path: Path) -> str:
    parts = ["shipit", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@functools.cache
def _imports(module: str) -> tuple[str, ...]:
    return tuple(_read_imports(module))


def _read_imports(module: str) -> Iterator[str]:
    """Every module ``module`` imports, absolute. ``from pkg import x`` names ``pkg.x`` when
    that is a module, else ``pkg`` (whose ``__init__`` defines ``x``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


@functools.cache
def _graph() -> dict[str, set[str]]:
    """shipit's modules and the shipit modules each imports (a package counts as a module)."""
    return {m: {i for i in _imports(m) if i in MODULES and i != m} for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            component.append(v)
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _top(name: str) -> str:
    return name.partition(".")[0]


def _within(module: str, folder: str) -> bool:
    return module == f"shipit.{folder}" or module.startswith(f"shipit.{folder}.")


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", [m for m in MODULES if _within(m, "node")] or ["(none yet)"])
def test_node_side_imports_only_the_stdlib_dask_and_itself(module: str) -> None:
    if module not in MODULES:
        pytest.skip("no shipit/node/ in this tree yet")
    allowed = set(sys.stdlib_module_names) | {"dask", "distributed", "__future__"}
    bad = sorted(i for i in _imports(module) if _top(i) not in allowed and not _within(i, "node"))
    assert bad == [], f"{module} runs on nodes, where only the stdlib and Dask exist"


@pytest.mark.parametrize("module", [m for m in MODULES if _within(m, "project")])
def test_what_ships_is_decided_without_dask_or_click(module: str) -> None:
    assert {_top(i) for i in _imports(module)} & {"distributed", "click"} == set()


@pytest.mark.parametrize("module", [m for m in MODULES if not _within(m, "cli")])
def test_only_the_command_line_imports_click(module: str) -> None:
    assert "click" not in {_top(i) for i in _imports(module)}


CORE = {"shipit.config", "shipit.errors", "shipit.report", "shipit.text"}


@pytest.mark.parametrize("module", sorted(CORE | {m for m in MODULES if _within(m, "project")}))
def test_the_pure_layers_import_nothing_above_them(module: str) -> None:
    """The core imports only the core; ``project/`` only itself, the core and the import
    graph the nodes read (``shipit.node.graph``: the standard library alone), so that a
    dry run names what the nodes will make of the code."""
    allowed = CORE | (
        {m for m in MODULES if _within(m, "project")} | {"shipit.node", "shipit.node.graph"}
        if module not in CORE
        else set()
    )
    above = sorted(i for i in _graph()[module] if i not in allowed)
    assert above == [], f"{module} imports from a layer above it"


@pytest.mark.parametrize(
    "module", [m for m in MODULES if not _within(m, "cli") and m != "shipit.__main__"]
)
def test_the_library_does_not_import_the_command_line(module: str) -> None:
    assert not any(_within(i, "cli") for i in _graph()[module])


def test_no_module_over_400_lines() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}, long
