"""The client process as a node: the shipped units' modules it has loaded, and which are older
than their files.

A notebook's kernel imports the project too; when a save reaches the cluster, the kernel keeps
running what it imported, so ``client.submit(f, x)`` and ``f(x)`` disagree. Each loaded module
of a unit is recorded the first time shipit looks (a sync, a watch, a check, the IPython
extension), with the digest of its file and the identity of its spec (``importlib.reload``
gives a module a new spec): a module whose file no longer has that digest, and that was not
reloaded since, runs older code than its file. ``reload_stale`` brings such modules in step,
with IPython's own in-place reload where IPython runs (existing functions and classes follow,
as ``%autoreload`` does), else ``importlib.reload``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from .project.discover import Unit
from .project.pack import file_digest

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_seen: dict[str, tuple[int, str]] = {}  # module name -> (id of its spec, file digest then)
_old_objects: dict[object, list[object]] = {}  # IPython's superreload keeps these across calls


@dataclass(frozen=True)
class Stale:
    """A loaded module that runs older code than its file."""

    unit: str
    module: str
    path: str


_digests: dict[str, tuple[tuple[int, int], str]] = {}  # path -> (size, mtime), digest then
_RACY_NS = 2_000_000_000  # a file written this recently is read again every time


def digest_of(path: str) -> str | None:
    """The sha256 of a file, read again only when its size or mtime changed."""
    try:
        st = os.stat(path)
        key = (st.st_size, st.st_mtime_ns)
        known = _digests.get(path)
        if known is not None and known[0] == key:
            return known[1]
        with open(path, "rb") as f:
            digest = file_digest(f.read())
    except OSError:
        return None
    if time.time_ns() - st.st_mtime_ns > _RACY_NS:  # else a same-size rewrite could hide
        _digests[path] = (key, digest)
    return digest


def loaded(units: Iterable[Unit]) -> dict[str, tuple[str, ModuleType, str]]:
    """The modules of ``units`` this process has loaded from their folders: name -> (unit,
    module, file)."""
    roots = {u.name: os.path.join(str(u.root), u.name) for u in units}
    found = {}
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        path = getattr(module, "__file__", None)
        if top in roots and isinstance(path, str):
            inside = path == roots[top] + ".py" or path.startswith(roots[top] + os.sep)
            if inside and path.endswith(".py"):
                found[name] = (top, module, path)
    return found


def look(units: Iterable[Unit]) -> list[Stale]:
    """Record the modules seen for the first time (or reloaded since); return those older
    than their files."""
    stale = []
    with _lock:
        for name, (unit, module, path) in loaded(units).items():
            spec = id(getattr(module, "__spec__", None))
            digest = digest_of(path)
            known = _seen.get(name)
            if known is None or known[0] != spec:
                if digest is not None:
                    _seen[name] = (spec, digest)
            elif digest is not None and digest != known[1]:
                stale.append(Stale(unit, name, path))
    return sorted(stale, key=lambda s: s.module)


def reload_stale(units: Iterable[Unit]) -> tuple[list[str], list[str]]:
    """Reload, in this process, the modules of ``units`` older than their files; (the
    modules reloaded, a line for each that could not be: its file's error, the old code
    kept)."""
    units = list(units)
    done, failed = [], []
    for stale in look(units):
        module = sys.modules.get(stale.module)
        if module is None:
            continue
        try:
            _reload(module)
            done.append(stale.module)
        except SyntaxError as e:
            where = f"{e.filename}:{e.lineno}" if e.filename else stale.path
            failed.append(f"{where}: {e.msg}; the kernel keeps the last good {stale.module}")
        except Exception as e:
            failed.append(f"{stale.module}: {type(e).__name__}: {e}; kept the old code")
    look(units)  # the reloaded ones afresh
    return done, failed


def _reload(module: ModuleType) -> None:
    ipython = sys.modules.get("IPython.extensions.autoreload")
    if ipython is None and "IPython" in sys.modules:
        try:
            ipython = importlib.import_module("IPython.extensions.autoreload")
        except ImportError:
            ipython = None
    superreload = getattr(ipython, "superreload", None)
    if callable(superreload):
        superreload(module, importlib.reload, _old_objects)
    else:
        importlib.reload(module)
