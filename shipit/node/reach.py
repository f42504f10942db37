"""Which loaded modules a change reaches, on the import graph :mod:`.graph` reads.

A node asks this at each switch (``finder.switch``): the modules it loaded from the version
it leaves, each with what its text imports, and the files the new version changes. The
answer is the set to forget; every other module stays loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping

from .graph import Imports, imports_of, module_name, package_of


def stale(
    loaded: Mapping[str, Imports],
    changed: Iterable[str],
    modules: Collection[str],
    memo: dict[tuple[str, Imports], tuple[frozenset[str], frozenset[str]]] | None = None,
) -> set[str]:
    """The loaded modules to forget: the ``changed`` ones (their file changed), every loaded
    module that holds something of a forgotten one, transitively, and every module that runs
    or takes from a changed one (it may use its names in ways the text hides).

    ``loaded`` maps each loaded shipped module to its imports (an opaque module goes with
    any change in its unit, the top-level name), ``modules`` names every shipped module. A
    name a package passes on (``from .core import Symbol`` in ``sympy``) is held from where
    it comes: a change elsewhere in the package leaves its takers loaded. ``memo`` keeps
    each module's edges for the next call with the same ``modules`` and the same packages'
    exports (a node's next save, most often).
    """
    passed = {name: {n: (p, m) for n, p, m in f.exports} for name, f in loaded.items()}
    changed = set(changed)
    resolved: dict[tuple[str, str], tuple[str, str]] = {}

    def resolve(package: str, dotted: str) -> tuple[str, str]:
        """Where ``package.dotted`` looks its first name up, and the module that holds it."""
        key = (package, dotted)
        found = resolved.get(key)
        if found is None:
            parts = dotted.split(".")
            looked = package
            while parts and f"{looked}.{parts[0]}" in modules:
                looked = f"{looked}.{parts.pop(0)}"
            found = resolved[key] = (looked, looked)  # also what a cycle of re-exports gets
            via = passed.get(looked, {}).get(parts[0]) if parts else None
            if via is not None:
                found = resolved[key] = (looked, resolve(via[0], ".".join([via[1], *parts[1:]]))[1])
        return found

    holds: dict[str, set[str]] = {}  # module -> the loaded modules holding something of it
    whole: dict[str, set[str]] = {}  # unit -> its opaque modules
    children: dict[str, list[str]] = {}
    for name in loaded:
        children.setdefault(name.rpartition(".")[0], []).append(name)
    todo = list(changed)
    memo = {} if memo is None else memo
    for name, found in loaded.items():
        edges = memo.get((name, found))
        if edges is None:
            pairs = [resolve(p, n) for p, n in found.takes]
            edges = memo[(name, found)] = (
                found.names | {holder for _, holder in pairs},
                found.runs | {looked for looked, _ in pairs},
            )
        targets = set(edges[0])
        # A module that looks a name up in a changed file goes: what that file passes on
        # may come from elsewhere now.
        reached = not edges[1].isdisjoint(changed)
        for package in found.stars:
            targets.add(package)
            targets.update(children.get(package, ()))
        for target in targets - {name}:
            holds.setdefault(target, set()).add(name)
        if reached:
            todo.append(name)
        if found.opaque:
            whole.setdefault(name.partition(".")[0], set()).add(name)
    gone: set[str] = set()
    while todo:
        name = todo.pop()
        if name in gone:
            continue
        gone.add(name)
        todo.extend(m for m in holds.get(name, ()) if m not in gone)
        todo.extend(m for m in whole.get(name.partition(".")[0], ()) if m not in gone)
    return {m for m in gone if m in loaded}


class Reader:
    """The imports of loaded shipped modules, read once per content (a node keeps one)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Imports] = {}
        self._memo: dict[tuple[str, Imports], tuple[frozenset[str], frozenset[str]]] = {}
        self._memo_key: object = None

    def planner(
        self, held: Mapping[str, tuple[str, dict[str, str]]], new: Mapping[str, dict[str, str]]
    ) -> Callable[[dict[str, str]], set[str]]:
        """What ``finder.switch`` asks: given the loaded modules (and the folder each came
        from), the ones to forget. ``held``: each unit the node runs, its folder and
        manifest; ``new``: the manifest each changed unit moves to."""
        modules = {
            name
            for manifest in [*(m for _, m in held.values()), *new.values()]
            for name in map(module_name, manifest)
            if name is not None
        }
        children: dict[str, set[str]] = {}
        for name in modules:
            children.setdefault(name.rpartition(".")[0], set()).add(name)
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
                changed.update(children.get(package, ()))

        def plan(loaded: dict[str, str]) -> set[str]:
            found = self.read(held, loaded)
            key = (
                frozenset(modules),
                frozenset((n, f.exports) for n, f in found.items() if f.exports),
            )
            if key != self._memo_key:
                self._memo_key, self._memo = key, {}
            gone = stale(found, changed, modules, self._memo)
            # A save that reaches most of a unit starts it fresh: little left to keep, and
            # what stays would hold registries that the reloaded rest fills again.
            for unit in {m.partition(".")[0] for m in gone}:
                mine = [m for m in loaded if m.partition(".")[0] == unit]
                if 2 * sum(m in gone for m in mine) > len(mine):
                    gone.update(mine)
            return gone

        return plan

    def read(
        self, held: Mapping[str, tuple[str, dict[str, str]]], loaded: dict[str, str]
    ) -> dict[str, Imports]:
        """The imports of each loaded module (and the folder it came from), read once per
        content: a node reads them before it takes the import lock, and again under it."""
        if len(self._cache) > 100_000:  # a long watch: forget the versions of past saves
            self._cache.clear()
        found = {}
        for name, folder in loaded.items():
            unit = name.partition(".")[0]
            found[name] = self._imports(name, folder, held[unit][1] if unit in held else {})
        return found

    def _imports(self, name: str, folder: str, manifest: dict[str, str]) -> Imports:
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
                found = self._cache[key] = imports_of(source, name, package)
            return found
        return Imports(frozenset(), True)  # not a file the manifest names: assume the worst
