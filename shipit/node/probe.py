"""What one process has: its Python, its platform, the distributions asked about, the code shipped.

This module imports only the standard library: the client pickles it by value, so the
scheduler and workers run it whether or not shipit is installed there. ``probe`` returns
plain dicts; ``shipit.versions`` compares them.

Versions are read from disk on every call (never through ``importlib.metadata``'s caches),
and each distribution that is already imported is checked against what was loaded: a
package upgraded on disk after the process imported it needs a restart.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import platform
import re
import sys
from typing import Any

from .joining import lacking

# The versions this process has loaded, recorded when a probe first saw each distribution
# imported; kept on the worker or scheduler object there, here for the client process.
_CLIENT_LOADED: dict[str, dict[str, Any]] = {}


def probe(
    distributions: list[str], dask_worker: Any = None, dask_scheduler: Any = None
) -> dict[str, Any]:
    """Facts about this process, for ``client.run`` / ``client.run_on_scheduler`` or a local call.

    >>> probe(["dask"])["packages"]["dask"]
    {'version': '2026.8.0', 'imported': True, 'loaded': '2026.8.0', 'files_changed': False}
    """
    importlib.invalidate_caches()
    installed = _installed()
    # distributed passes its server as both when the function takes both: one is enough.
    node = dask_worker if dask_worker is not None else dask_scheduler
    loaded = _CLIENT_LOADED if node is None else getattr(node, "_shipit_loaded", None)
    if loaded is None:
        loaded = node._shipit_loaded = {}
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": sys.platform,
        "machine": platform.machine(),
        "packages": {n: _package(n, installed.get(_canonical(n)), loaded) for n in distributions},
        "units": _units(node),
        # how this worker's install of the cluster's requirements went when it joined
        "joined": _joined(node),
        # False in a process that also holds a user's objects: its modules are left alone
        "switches": getattr(getattr(node, "_shipit_store", None), "switching", None),
    }


def _joined(node: Any) -> dict[str, Any] | None:
    """This worker's install on joining; one that failed counts as done once what it
    lacked is here after all (a sync installed it since)."""
    report = getattr(node, "_shipit_packages", None)
    failed = isinstance(report, dict) and report.get("state") == "failed"
    if failed and not lacking(list(report.get("requirements") or ())):  # type: ignore[union-attr]
        report = node._shipit_packages = {**report, "state": "ok", "lacking": []}  # type: ignore[dict-item]
    return report


def _canonical(name: str) -> str:
    """PEP 503 normal form: ``Foo_Bar.baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed() -> dict[str, str]:
    """Each distribution's metadata folder, the first on sys.path as import finds it."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:  # a zip, or gone
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                project = name.rpartition(".")[0].partition("-")[0]
                found.setdefault(_canonical(project), os.path.join(entry or ".", name))
    return found


def _package(
    name: str, info: str | None, loaded: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    if info is None:
        return None
    version = _version(info)
    imported = any(module in sys.modules for module in _top_level(info))
    result: dict[str, Any] = {
        "version": version,
        "imported": imported,
        "loaded": None,
        "files_changed": False,
    }
    if not imported:
        return result
    fingerprint = _fingerprint(info)
    first = loaded.get(name)
    if first is None:
        at_import = _version_at_import(info, version)
        # When the version loaded is only inferred, the files it came from are unknown.
        first = {"version": at_import, "fingerprint": fingerprint if at_import == version else None}
        loaded[name] = first
    result["loaded"] = first["version"]
    result["files_changed"] = first["fingerprint"] not in (None, fingerprint)
    return result


def _version_at_import(info: str, version: str) -> str:
    """The version a process imported before any probe saw it.

    A module's ``__version__`` is set when it is imported. When it disagrees with the
    metadata and that metadata was written after this process started, the package was
    upgraded under the running process. Otherwise trust the metadata (some packages keep a
    stale ``__version__``).
    """
    started = _process_start()
    if started is None or _mtime(info) <= started:
        return version
    for module in _top_level(info):
        stated = getattr(sys.modules.get(module), "__version__", None)
        if isinstance(stated, str) and stated != version:
            return stated
    return version


def _process_start() -> float | None:
    psutil = sys.modules.get("psutil")  # distributed imports it on every node
    try:
        return float(psutil.Process().create_time()) if psutil else None
    except Exception:
        return None


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _read(info: str, *names: str) -> bytes:
    """The first of these metadata files that exists (an egg-info may be a single file)."""
    if os.path.isfile(info):
        names = ("",)
    for name in names:
        try:
            with open(os.path.join(info, name) if name else info, "rb") as f:
                return f.read()
        except OSError:
            continue
    return b""


def _version(info: str) -> str:
    for line in _read(info, "METADATA", "PKG-INFO").decode("utf-8", "replace").splitlines():
        if not line.strip():
            break  # the end of the headers
        key, _, value = line.partition(":")
        if key.strip().lower() == "version":
            return value.strip()
    return "unknown"


def _fingerprint(info: str) -> str:
    """Changes whenever the installed files do: RECORD lists each file with its hash."""
    return hashlib.sha256(_read(info, "RECORD", "SOURCES.txt", "PKG-INFO")).hexdigest()[:16]


def _top_level(info: str) -> list[str]:
    declared = _read(info, "top_level.txt").decode("utf-8", "replace").split()
    if declared:
        return declared
    names = []
    for line in _read(info, "RECORD").decode("utf-8", "replace").splitlines():
        path = line.split(",")[0]
        head = path.split("/")[0]
        if head.endswith(".py") and "/" not in path:
            head = head[:-3]
        if head.isidentifier() and not head.startswith("__editable__"):
            names.append(head)
    return sorted(set(names))


def _units(node: Any) -> dict[str, str] | None:
    """Digest of each unit shipit shipped into this node; None in the client or without shipit."""
    store = getattr(node, "_shipit_store", None)
    return dict(store.digests()) if store is not None else None
