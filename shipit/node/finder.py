"""How a node's imports find shipped code, and how they move from one version to the next.

One finder on ``sys.meta_path``, just before the standard path finder, maps each shipped
top-level name to the folder of its live version. A switch replaces that mapping in one
step, after every import of the switched units that is under way has finished (each holds
its module lock while it finds and loads): a task's import completes on the version it
started with, whose folder is never changed and stays on disk, or starts on the new one.

The folders are also on ``sys.path``, last, so that namespace packages combine shipped and
installed portions and subprocesses see them, never in front of the standard library.
"""

from __future__ import annotations

import _imp
import contextlib
import importlib.machinery
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

logger = logging.getLogger("distributed.shipit")

# How long a switch waits for imports under way before it goes ahead anyway.
IMPORT_WAIT = 30.0


class UnitFinder:
    """Finds the top-level modules and packages of shipped units in their live folders.

    Submodules are found through their package's ``__path__``, which points into the same
    folder. A namespace portion is left to the path finder, which joins it with the other
    portions on ``sys.path``.
    """

    shipit_finder = True  # how a newer agent recognizes an older one's finder

    def __init__(self, folders: dict[str, str] | None = None) -> None:
        self.folders: dict[str, str] = dict(folders or {})

    def __repr__(self) -> str:
        return f"<shipit UnitFinder of {sorted(self.folders)}>"

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if path is not None:
            return None
        folder = self.folders.get(name)
        if folder is None or name in sys.stdlib_module_names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, [folder], target)
        if spec is None or spec.loader is None:  # a namespace portion: sys.path joins them
            return None
        return spec

    def find_distributions(self, context: Any = None) -> Iterable[Any]:
        """The metadata shipped with the units (a ``<name>-<version>.dist-info`` in a live
        folder), found before any installed copy: ``importlib.metadata.version(project)``
        gives the client's version of it."""
        from importlib.metadata import DistributionFinder, MetadataPathFinder

        folders = sorted(set(self.folders.values()))
        if not folders:
            return iter(())
        name = getattr(context, "name", None)
        return MetadataPathFinder.find_distributions(
            DistributionFinder.Context(name=name, path=folders)
        )

    def invalidate_caches(self) -> None:
        """Nothing to do: a version's folder never changes."""


def finder() -> UnitFinder:
    """This process's finder, put in place on first use. A finder left by another agent
    (an older shipit) is replaced by this one, which takes over its folders."""
    _imp.acquire_lock()
    try:
        found = [f for f in sys.meta_path if getattr(f, "shipit_finder", False)]
        if len(found) == 1 and type(found[0]) is UnitFinder:
            return found[0]
        mine = UnitFinder()
        for old in found:
            mine.folders.update(getattr(old, "folders", {}))
            sys.meta_path.remove(old)
        at = next(
            (i for i, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder),
            len(sys.meta_path),
        )
        sys.meta_path.insert(at, mine)
        return mine
    finally:
        _imp.release_lock()


def _belongs(module: str, names: Iterable[str]) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


@contextlib.contextmanager
def imports_quiet(names: set[str], wait: float = IMPORT_WAIT) -> Iterator[None]:
    """Hold the import lock at a moment when no import of ``names`` (top-level names and
    their submodules) is under way. New imports need that lock to begin."""
    bootstrap = sys.modules["importlib._bootstrap"]
    locks = getattr(bootstrap, "_module_locks", {})
    deadline = time.monotonic() + wait
    while True:
        _imp.acquire_lock()
        busy = [n for n, ref in list(locks.items()) if _belongs(n, names) and ref() is not None]
        busy += [
            n
            for n, m in list(sys.modules.items())
            if _belongs(n, names) and getattr(getattr(m, "__spec__", None), "_initializing", False)
        ]
        if not busy or time.monotonic() > deadline:
            if busy:
                logger.warning("shipit: switching while %s is still being imported", busy[0])
            try:
                yield
            finally:
                _imp.release_lock()
            return
        _imp.release_lock()
        time.sleep(0.001)


def _inside(path: object, folders: tuple[str, ...]) -> bool:
    return isinstance(path, str) and path.startswith(folders)


def _loaded_from(module: Any, folders: tuple[str, ...]) -> bool:
    if _inside(getattr(module, "__file__", None), folders):
        return True
    return any(_inside(p, folders) for p in list(getattr(module, "__path__", None) or ()))


def switch(changes: dict[str, str | None], namespaces: frozenset[str] = frozenset()) -> int:
    """Point each unit in ``changes`` at its new folder (None: no longer shipped) and forget
    the modules loaded from its previous one, so that the next import reads the new
    version. A regular unit's modules are all forgotten, wherever they came from (an
    installed copy of the project gives way to the shipped one); of a namespace package,
    only the portions loaded from its previous folder. Returns how many were forgotten."""
    mine = finder()
    with imports_quiet(set(changes)):
        old = {name: mine.folders.get(name) for name in changes}
        for name, folder in changes.items():
            if folder is None:
                mine.folders.pop(name, None)
            elif name not in namespaces:
                mine.folders[name] = folder
            _replace_on_sys_path(old[name], folder)
        previous = tuple(os.path.join(f, "") for f in old.values() if f)
        gone = [
            m
            for m, module in list(sys.modules.items())
            if _belongs(m, changes)
            and (m.partition(".")[0] not in namespaces or _loaded_from(module, previous))
        ]
        for m in gone:
            sys.modules.pop(m, None)
    return len(gone)


def _replace_on_sys_path(old: str | None, new: str | None) -> None:
    """Change sys.path in one step where it can (a slot replaced, an entry added at the end),
    so that a search of sys.path under way in another thread skips nothing."""
    if old is not None and old in sys.path:
        if new is None:
            sys.path.remove(old)
        else:
            sys.path[sys.path.index(old)] = new
    elif new is not None and new not in sys.path:
        sys.path.append(new)


def forget_folder(folder: str) -> None:
    """After a folder is deleted: drop what the import system cached about it."""
    sys.path_importer_cache.pop(folder, None)
