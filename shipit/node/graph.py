"""Which loaded modules a new version of a unit makes stale, by the static import graph.

A save changes a few files. The modules loaded from those files are stale, and so is every
loaded module that holds something of a stale one: the modules that import it at their top
level (``import a.b``, ``from a.b import f``, ``from . import b``, ``from a import *``,
``importlib.import_module("a.b")``), transitively, across units. Everything else stays
loaded. The graph is read from the files as text, never by importing them; imports inside a
function run at each call and find the fresh module themselves, so they are not edges.

Where the imports of a module cannot be known from its text (an import by a computed name,
``__path__`` or ``sys.modules`` changed at its top level), the module counts as importing
every module of its unit.

Examples::

    >>> found = imports_of(b"import a.b\\nfrom .c import d\\nfrom . import e\\n", "p.m", {"p.e"})
    >>> sorted(found.names), found.opaque
    (['a', 'a.b', 'p.c', 'p.e'], False)
    >>> imports_of(b"def f():\\n    import x\\nmod = __import__(name)\\n", "m", set()).opaque
    True
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import NamedTuple

# An import statement at the start of a line; a parenthesised list may span lines.
_STATEMENT = re.compile(
    rb"^([ \t]*)(?:import[ \t]+([^\n#;]+)|from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]*"
    rb"(\([^)]*\)|[^\n#;]+))",
    re.M,
)
_CALL = re.compile(
    rb"^([ \t]*)[^\n#]*?\b(?:import_module|__import__)\(\s*(?:(['\"])([\w.]*)\2)?", re.M
)
_TRICK = re.compile(
    rb"^([ \t]*)[^\n#]*?(?:\b__path__\s*(?:[+]?=(?!=)|\.(?:append|extend|insert))"
    rb"|\bextend_path\(|\bsys\.modules\[[^\]\n]*\]\s*=(?!=)|\bsys\.modules\.(?:update|setdefault)\()",
    re.M,
)
_TRICK_WORDS = (b"__path__", b"extend_path", b"sys.modules")
_FUNCTION = re.compile(rb"[ \t]*(?:async[ \t]+)?def[ \t]")
_NAME = re.compile(r"[A-Za-z_][\w.]*")


class Imports(NamedTuple):
    names: frozenset[str]  # absolute module names the module's top-level code imports
    opaque: bool  # some of its imports cannot be read from its text


def module_name(rel: str) -> str | None:
    """The module a shipped file is (``pkg/sub/__init__.py`` -> ``pkg.sub``), or None."""
    if not rel.endswith(".py"):
        return None
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None


def package_of(rel: str, manifest: Collection[str]) -> str | None:
    """The package a data file belongs to: its nearest folder with an ``__init__.py``."""
    parts = rel.split("/")[:-1]
    while parts:
        if "/".join([*parts, "__init__.py"]) in manifest:
            return ".".join(parts)
        parts.pop()
    return None


def imports_of(
    source: bytes, module: str, modules: Collection[str], package: bool = False
) -> Imports:
    """What the top-level code of ``module`` imports. ``modules``: the shipped module names,
    which tell a submodule (``from p import sub``) from a name ``p`` defines; ``package``:
    ``module`` is a package's ``__init__``, the base of its relative imports."""
    lines: list[bytes] | None = None
    base = module if package else module.rpartition(".")[0]

    def at_top(match: re.Match[bytes]) -> bool:
        nonlocal lines
        if not match.group(1):
            return True
        if lines is None:
            lines = source.split(b"\n")
        return not _in_function(lines, source.count(b"\n", 0, match.start()), len(match.group(1)))

    names: set[str] = set()
    for match in _STATEMENT.finditer(source):
        if not at_top(match):
            continue
        plain, origin, imported = match.group(2), match.group(3), match.group(4)
        if plain is not None:
            for part in plain.decode(errors="replace").split(","):
                words = part.split()
                found = _NAME.match(words[0]) if words else None
                if found is None:
                    continue
                name = found.group().rstrip(".")
                if len(words) >= 3 and words[1] == "as":
                    names.add(name)
                else:
                    names.update(_parents(name))
            continue
        target = _absolute(origin.decode(errors="replace"), base)
        if target is None:
            continue
        # The module holds the package itself only where it takes a name the package defines
        # (``from p import sub`` of a submodule holds ``p.sub`` alone).
        listed = imported.decode(errors="replace").strip("() \t\r\n")
        for part in listed.replace("\\\n", " ").split(","):
            word = part.split()[0] if part.split() else ""
            if word == "*":
                names.add(target)
                names.update(m for m in modules if m.rpartition(".")[0] == target)
            elif f"{target}.{word}" in modules:
                names.add(f"{target}.{word}")
            elif word:
                names.add(target)
    opaque = False
    if b"import" in source and (b"import_module" in source or b"__import__" in source):
        for match in _CALL.finditer(source):
            if at_top(match):
                literal = match.group(3)
                if literal and not literal.startswith(b"."):
                    names.update(_parents(literal.decode()))
                else:
                    opaque = True
    if not opaque and any(word in source for word in _TRICK_WORDS):
        opaque = any(at_top(match) for match in _TRICK.finditer(source))
    names.discard(module)
    return Imports(frozenset(names), opaque)


def computes_imports(source: bytes) -> bool:
    """Whether a module's top-level imports cannot be read from its text (see
    :func:`imports_of`): what ``shipit sync --dry-run`` names once."""
    words = (b"import_module", b"__import__", *_TRICK_WORDS)
    return any(w in source for w in words) and imports_of(source, "", ()).opaque


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _absolute(origin: str, base: str) -> str | None:
    """``from ..x import`` in a module of package ``base`` -> the absolute name."""
    dots = len(origin) - len(origin.lstrip("."))
    rest = origin[dots:]
    if not dots:
        return rest or None
    parts = base.split(".") if base else []
    if dots - 1 > len(parts) or (dots - 1 == len(parts) and not rest):
        return None
    parts = parts[: len(parts) - (dots - 1)]
    return ".".join([*parts, rest] if rest else parts) or None


def _in_function(lines: list[bytes], index: int, indent: int) -> bool:
    """Whether line ``index``, indented by ``indent``, lies in a function's body: the
    enclosing blocks are read back by indentation. Where text fools it (a string spanning
    lines), it errs towards "no", which costs a reload, never a stale module."""
    for line in reversed(lines[:index]):
        stripped = line.lstrip(b" \t")
        if not stripped or stripped.startswith(b"#"):
            continue
        depth = len(line) - len(stripped)
        if depth < indent:
            if _FUNCTION.match(line):
                return True
            indent = depth
            if depth == 0:
                return False
    return False


def stale(
    loaded: Mapping[str, Imports], changed: Iterable[str], units: Mapping[str, str]
) -> set[str]:
    """The loaded modules to forget: the ``changed`` ones, and every loaded module that
    imports one of those, transitively. ``loaded`` maps each loaded shipped module to its
    imports; ``units`` maps a module to its unit (an opaque module imports all of its unit).
    """
    importers: dict[str, set[str]] = {}
    whole: dict[str, set[str]] = {}  # unit -> its opaque modules
    for name, found in loaded.items():
        for imported in found.names:
            importers.setdefault(imported, set()).add(name)
        if found.opaque:
            whole.setdefault(units.get(name, name), set()).add(name)
    gone: set[str] = set()
    todo = [m for m in changed]
    while todo:
        name = todo.pop()
        if name in gone:
            continue
        gone.add(name)
        todo.extend(m for m in importers.get(name, ()) if m not in gone)
        todo.extend(m for m in whole.get(units.get(name, name), ()) if m not in gone)
    return {m for m in gone if m in loaded}


class Reader:
    """The imports of loaded shipped modules, read once per content (a node keeps one)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Imports] = {}

    def planner(
        self, held: Mapping[str, tuple[str, dict[str, str]]], new: Mapping[str, dict[str, str]]
    ) -> Callable[[dict[str, str]], set[str]]:
        """What ``finder.switch`` asks: given the loaded modules (and the folder each came
        from), the ones to forget. ``held``: each unit the node runs, its folder and
        manifest; ``new``: the manifest each changed unit moves to."""
        modules: set[str] = set()
        owner: dict[str, str] = {}
        for unit, manifest in [*((u, m) for u, (_, m) in held.items()), *new.items()]:
            for rel in manifest:
                name = module_name(rel)
                if name is not None:
                    modules.add(name)
                    owner[name] = unit
        changed: set[str] = set()
        for unit, manifest in new.items():
            before = held[unit][1] if unit in held else {}
            for rel in set(before) | set(manifest):
                if before.get(rel) == manifest.get(rel):
                    continue
                module = module_name(rel)
                if module is not None:
                    changed.add(module)
                    continue
                # A data file: the package holding it and the modules beside it, which may
                # read it as they load (the unit's top module for its metadata).
                package = package_of(rel, manifest) or package_of(rel, before) or unit
                changed.add(package)
                changed.update(m for m in modules if m.rpartition(".")[0] == package)

        def plan(loaded: dict[str, str]) -> set[str]:
            found = {}
            for name, folder in loaded.items():
                unit = name.partition(".")[0]
                manifest = held[unit][1] if unit in held else {}
                found[name] = self._imports(name, folder, manifest, modules)
            return stale(found, changed, owner)

        return plan

    def _imports(
        self, name: str, folder: str, manifest: dict[str, str], modules: set[str]
    ) -> Imports:
        base = name.replace(".", "/")
        for rel, package in ((f"{base}/__init__.py", True), (f"{base}.py", False)):
            digest = manifest.get(rel)
            if digest is None:
                continue
            key = (digest, name)
            found = self._cache.get(key)
            if found is None:
                try:
                    with open(os.path.join(folder, *rel.split("/")), "rb") as f:
                        source = f.read()
                except OSError:
                    return Imports(frozenset(), True)
                found = self._cache[key] = imports_of(source, name, modules, package)
            return found
        return Imports(frozenset(), True)  # not a file the manifest names: assume the worst
