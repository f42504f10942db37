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
import importlib.util
import logging
import marshal
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
        # package -> its submodules kept loaded while it was forgotten, bound to it again
        # once it ran (the import system binds a submodule only when it loads it)
        self.rebind: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"<shipit UnitFinder of {sorted(self.folders)}>"

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        top = name.partition(".")[0]
        folder = self.folders.get(top)
        if folder is None or top in sys.stdlib_module_names:
            return None
        if path is None:
            if top != name:
                return None
            path = [folder]
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None:  # a namespace portion: sys.path joins them
            return None
        if type(spec.loader) is importlib.machinery.SourceFileLoader and _inside(
            spec.origin, (os.path.join(os.path.dirname(folder), ""),)
        ):
            spec.loader = ShippedLoader(spec.loader.name, spec.loader.path)
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


class ShippedLoader(importlib.machinery.SourceFileLoader):
    """Loads a module from a shipped folder. Its bytecode is written beside it even where
    the process writes none (``PYTHONDONTWRITEBYTECODE``): the folder is shipit's and its
    sources never change, so a worker never compiles a shipped file twice. A package that
    runs again after a partial forget gets its kept submodules back as attributes."""

    # typeshed calls it a static method; CPython's loaders call it on the instance
    def source_to_code(self, data: Any, path: Any, **options: Any) -> Any:  # type: ignore[override]
        code = super().source_to_code(data, path, **options)
        if sys.dont_write_bytecode and isinstance(path, str):
            _write_bytecode(self, code, path)
        return code

    def exec_module(self, module: Any) -> None:
        super().exec_module(module)
        kept = finder().rebind.pop(module.__name__, ())
        for sub in kept:
            child = sys.modules.get(sub)
            attribute = sub.rpartition(".")[2]
            if child is not None and not hasattr(module, attribute):
                setattr(module, attribute, child)


def _write_bytecode(loader: ShippedLoader, code: Any, path: str) -> None:
    """Write the timestamp-checked bytecode CPython itself would write (PEP 552)."""
    try:
        stats = loader.path_stats(path)
        target = importlib.util.cache_from_source(path)
        data = bytearray(importlib.util.MAGIC_NUMBER)
        data += (0).to_bytes(4, "little")
        data += (int(stats["mtime"]) & 0xFFFFFFFF).to_bytes(4, "little")
        data += (int(stats["size"]) & 0xFFFFFFFF).to_bytes(4, "little")
        data += marshal.dumps(code)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except (OSError, ValueError, NotImplementedError) as e:
        logger.debug("shipit: no bytecode written for %s: %s", path, e)


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


def switch(
    changes: dict[str, str | None],
    namespaces: frozenset[str] = frozenset(),
    stale: Callable[[dict[str, str]], set[str]] | None = None,
    held: Iterable[str] = (),
) -> int:
    """Point each unit in ``changes`` at its new folder (None: no longer shipped) and forget
    the modules the change makes stale, so that the next import reads the new version.

    ``stale`` is given the loaded modules of the shipped units (``held``, and the ones in
    ``changes``), each with the folder it was loaded from, and names the ones to forget
    (``reach.stale``): the rest stay loaded, their file attributes moved to the new folder,
    which holds the same files. Without it, every module of a changed unit is forgotten.
    Modules of a regular unit loaded from anywhere else than its previous folder (an
    installed copy of the project gives way to the shipped one) are always forgotten; of a
    namespace package, only the portions loaded from its previous folder. Returns how many
    modules were forgotten."""
    mine = finder()
    units = set(changes) | set(held)
    with imports_quiet(units):
        old = {name: mine.folders.get(name) for name in changes}
        for name, folder in changes.items():
            if folder is None:
                mine.folders.pop(name, None)
            elif name not in namespaces:
                mine.folders[name] = folder
            _replace_on_sys_path(old[name], folder)
        previous = tuple(os.path.join(f, "") for f in old.values() if f)
        loaded = _loaded(units, {**mine.folders, **{n: f for n, f in old.items() if f}})
        partial = set() if stale is None else stale(loaded)
        gone: dict[str, Any] = {}
        for m, module in list(sys.modules.items()):
            top = m.partition(".")[0]
            if top not in units:
                continue
            if top in changes and (
                old[top] is None
                or changes[top] is None
                or top in namespaces
                or stale is None
                or m not in loaded
            ):
                if top not in namespaces or _loaded_from(module, previous):
                    gone[m] = module
            elif m in partial:
                gone[m] = module
        for m in gone:
            sys.modules.pop(m, None)
        _tidy_kept(gone, old, changes)
    return len(gone)


def loaded_modules(units: set[str]) -> dict[str, str]:
    """The loaded modules of these units that came from their live folders, and the folder."""
    return _loaded(units, finder().folders)


def _loaded(units: set[str], folders: dict[str, str]) -> dict[str, str]:
    """The loaded modules of these units that came from a shipped folder, and that folder."""
    found = {}
    for m, module in list(sys.modules.items()):
        top = m.partition(".")[0]
        folder = folders.get(top)
        if top in units and folder and _loaded_from(module, (os.path.join(folder, ""),)):
            found[m] = folder
    return found


def _tidy_kept(
    gone: dict[str, Any], old: dict[str, str | None], new: dict[str, str | None]
) -> None:
    """After a partial forget: a kept package no longer holds a forgotten submodule (its next
    import binds the new one), a forgotten package gets its kept submodules back once it ran
    again, and kept modules of a changed unit name their files in the new folder."""
    mine = finder()
    gone_set = set(gone)
    for m, module in gone.items():
        parent, _, child = m.rpartition(".")
        holder = sys.modules.get(parent)
        if holder is not None and getattr(holder, child, None) is module:
            with contextlib.suppress(AttributeError, TypeError):
                delattr(holder, child)
    for m in list(sys.modules):
        parent = m.rpartition(".")[0]
        if parent in gone_set and m not in gone_set:
            mine.rebind.setdefault(parent, []).append(m)
    moves = {
        os.path.join(o, ""): os.path.join(n, "")
        for name, o in old.items()
        if o and (n := new.get(name)) and n != o
    }
    if moves:
        for m, module in list(sys.modules.items()):
            if m.partition(".")[0] in new and m not in gone_set:
                _move(module, moves)


def _moved(path: Any, moves: dict[str, str]) -> Any:
    if isinstance(path, str):
        for old, new in moves.items():
            if path.startswith(old):
                return new + path[len(old) :]
    return path


def _move(module: Any, moves: dict[str, str]) -> None:
    """Point a kept module's file attributes at the same file in the new version's folder."""
    with contextlib.suppress(AttributeError, TypeError):
        for attribute in ("__file__", "__cached__"):
            value = getattr(module, attribute, None)
            if value is not None:
                setattr(module, attribute, _moved(value, moves))
        search = getattr(module, "__path__", None)
        if isinstance(search, list):
            search[:] = [_moved(p, moves) for p in search]
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.origin = _moved(spec.origin, moves)
            if spec.cached is not None:
                spec.cached = _moved(spec.cached, moves)
            locations = spec.submodule_search_locations
            if isinstance(locations, list) and locations is not search:
                locations[:] = [_moved(p, moves) for p in locations]
        loader = getattr(module, "__loader__", None)
        if loader is not None and isinstance(getattr(loader, "path", None), str):
            loader.path = _moved(loader.path, moves)


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
