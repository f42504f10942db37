"""The shipped units of one node process: which version of each it runs, and the move to the next.

A push names, per unit, the version to run (its digest and manifest). The node makes sure
the host store holds that version whole (building it once per host), pins it, and switches
its imports to it (``finder.switch``). The versions it ran before stay pinned until no task
that was running at the switch still runs, so an import or a file read under way completes
on the version it started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from . import finder, reach
from .hoststore import HostStore, NodeFolder, version_name
from .protocol import (
    PROTOCOL,
    UnitVersion,
    case_clash,
    check_unit,
    mismatch_text,
    this_python,
)

logger = logging.getLogger("distributed.shipit")

# Old versions a node keeps pinned per unit, at most, while tasks that may read them run.
_MAX_RETIRED = 8
_FETCH_TIMEOUT = 120.0

Fetch = Callable[[list[str]], Coroutine[Any, Any, dict[str, bytes]]]


class Refused(Exception):
    """This node cannot take a unit (another Python than the client's); said, not crashed."""


def _manifest_of(units: dict[str, dict[str, Any]], unit: Any) -> Any:
    """The manifest this node holds for a unit named in a message, if any."""
    if not isinstance(unit, dict):
        return None
    held = units.get(str(unit.get("name")))
    return held.get("manifest") if isinstance(held, dict) else None


def is_namespace(name: str, manifest: dict[str, str]) -> bool:
    """A unit that is a PEP 420 portion: a folder without ``__init__.py``."""
    return f"{name}.py" not in manifest and f"{name}/__init__.py" not in manifest


class NodeStore:
    """The units of one process. ``switching`` is False in a process that holds a user's
    objects (a notebook's or a script's in-process cluster): there the store records what
    the cluster runs and leaves the process's modules alone."""

    protocol = PROTOCOL

    def __init__(
        self,
        host: HostStore | None,
        switching: bool = True,
        role: str = "worker",
        running: Callable[[], set[str]] = set,
    ) -> None:
        self.host = host
        self.switching = switching and host is not None
        self.node: NodeFolder | None = host.node_folder(role) if self.switching and host else None
        self.running = running  # keys of the tasks running now (a worker's)
        self.units: dict[str, dict[str, Any]] = {}  # name -> digest, manifest, path, python
        self.epoch = ""
        self.generation = 0
        self.refused: dict[str, str] = {}  # unit -> why this node does not run it
        self.retired: dict[str, list[tuple[str, set[str]]]] = {}  # unit -> (version, tasks)
        self.imports = reach.Reader()
        self.lock = asyncio.Lock()

    @classmethod
    def take_over(cls, old: Any, role: str, running: Callable[[], set[str]]) -> NodeStore | None:
        """A store of this agent's code that carries on the state of the store an earlier
        agent left in this process (the plugins were registered again), or None."""
        if getattr(old, "protocol", None) != PROTOCOL:
            return None
        new = cls.__new__(cls)
        host = old.host
        new.host = None if host is None else HostStore(host.home, host.shared)
        new.node = None if old.node is None else NodeFolder(old.node.path, old.node.lock_fd)
        new.switching = old.switching
        new.running = running
        new.units, new.refused, new.retired = old.units, old.refused, old.retired
        new.epoch, new.generation = old.epoch, old.generation
        new.imports = reach.Reader()
        new.lock = asyncio.Lock()
        return new

    def digests(self) -> dict[str, str]:
        return {name: unit["digest"] for name, unit in self.units.items()}

    def describe(self) -> dict[str, Any]:
        """What this store is, for ``shipit status``."""
        return {
            "switching": self.switching,
            "store": self.host.home if self.host is not None else None,
            "refused": dict(self.refused),
        }

    async def apply(
        self,
        epoch: str,
        generation: int,
        changed: list[UnitVersion],
        removed: list[str],
        blobs: Any,
        fetch: Fetch | None = None,
        full: bool = False,
    ) -> dict[str, str]:
        """Bring this node to ``generation`` of ``epoch``: the units in ``changed`` at their
        versions, the ones in ``removed`` gone (with ``full``, every unit not in ``changed``
        too). Returns the digests now live; raises :class:`Refused` for units this node's
        Python cannot run, after applying the others."""
        for unit in changed:
            check_unit(unit, _manifest_of(self.units, unit))
        for name in removed:
            check_unit({"name": name, "digest": "0" * 64})
        async with self.lock:
            if epoch == self.epoch and generation < self.generation:
                return self.digests()  # a newer push got here first
            if full:
                names = {u["name"] for u in changed}
                removed = [*removed, *(n for n in self.units if n not in names)]
            mine = this_python()
            refused = {
                u["name"]: mismatch_text(mine, u["python"])
                for u in changed
                if u.get("python", mine) != mine
            }
            changed = [
                u
                for u in changed
                if u["name"] not in refused
                and self.units.get(u["name"], {}).get("digest") != u["digest"]
            ]
            removed = [n for n in dict.fromkeys(removed) if n in self.units or n in refused]
            if changed or removed:
                if self.switching:
                    await self._switch(changed, removed, blobs, fetch)
                else:
                    self._record(changed, removed)
            for name in removed:
                self.refused.pop(name, None)
            self.refused.update(refused)
            self.epoch, self.generation = epoch, generation
            if refused:
                raise Refused(next(iter(refused.values())))
            return self.digests()

    def _record(self, changed: list[UnitVersion], removed: list[str]) -> None:
        for name in removed:
            self.units.pop(name, None)
        for u in changed:
            self.units[u["name"]] = {
                "digest": u["digest"],
                "manifest": u["manifest"],
                "path": None,
                "python": u.get("python"),
            }

    async def _switch(
        self, changed: list[UnitVersion], removed: list[str], blobs: Any, fetch: Fetch | None
    ) -> None:
        assert self.host is not None and self.node is not None
        for u in changed:
            clash = case_clash(u["manifest"])
            if clash is not None and _folds_case(self.host.versions):
                raise OSError(
                    f"{u['name']}: {clash[0]} and {clash[1]} differ only in case, "
                    "and this node's file system takes them for one file"
                )
        local = self._local_files()
        wanted = {d for u in changed for d in u["manifest"].values()}
        needed = sorted(
            d for d in wanted if d not in blobs and d not in local and not self.host.has(d)
        )
        fetched: dict[str, bytes] = {}
        if needed:
            if fetch is None:
                raise RuntimeError(f"{len(needed)} file(s) missing and nowhere to fetch them")
            fetched = _checked(await fetch(needed))
        loop = asyncio.get_running_loop()

        def content(digest: str) -> bytes:
            """A file's bytes, however this node can get them; a link that failed or a content
            collected meanwhile is fetched from the scheduler."""
            data = fetched.get(digest)
            if data is None:
                data = blobs.get(digest)
            if data is None and digest in local:
                try:
                    with open(local[digest], "rb") as f:
                        data = f.read()
                except OSError:
                    data = None
            if data is None:
                if fetch is None:
                    raise RuntimeError(f"no copy of {digest[:12]} on this node")
                more: Any = asyncio.run_coroutine_threadsafe(fetch([digest]), loop)
                data = _checked(more.result(_FETCH_TIMEOUT))[digest]
            return data

        running = self.running()  # read on the event loop, which changes it
        await loop.run_in_executor(None, self._build_and_switch, changed, removed, content, running)

    def _build_and_switch(
        self,
        changed: list[UnitVersion],
        removed: list[str],
        content: Callable[[str], bytes],
        running: set[str],
    ) -> None:
        assert self.host is not None and self.node is not None
        paths: dict[str, str | None] = {}
        for u in changed:
            name = u["name"]
            version = version_name(name, u["digest"])
            self.node.pin(version)  # before it exists: no other node collects it meanwhile
            old = self.units.get(name)
            previous = (old["path"], old["manifest"]) if old and old.get("path") else None
            try:
                paths[name] = self.host.build(name, u["digest"], u["manifest"], content, previous)
            except BaseException:
                if old is None or old.get("path") != self.host.version_path(name, u["digest"]):
                    self.node.unpin(version)
                raise
        paths.update(dict.fromkeys(removed))
        namespaces = frozenset(
            u["name"] for u in changed if is_namespace(u["name"], u["manifest"])
        ) | frozenset(
            n for n in removed if is_namespace(n, self.units.get(n, {}).get("manifest", {}))
        )
        held = {n: (u["path"], u["manifest"]) for n, u in self.units.items() if u.get("path")}
        plan = None
        if reload_changed():
            plan = self.imports.planner(
                held,
                {**{u["name"]: u["manifest"] for u in changed}, **{n: {} for n in removed}},
            )
            self.imports.read(held, finder.loaded_modules(set(held)))  # before the import lock
        finder.switch(paths, namespaces, plan, held)
        for name in paths:
            old = self.units.pop(name, None)
            if old is not None and old.get("path"):
                self.retired.setdefault(name, []).append(
                    (os.path.basename(old["path"]), set(running))
                )
        for u in changed:
            self.units[u["name"]] = {
                "digest": u["digest"],
                "manifest": u["manifest"],
                "path": paths[u["name"]],
                "python": u.get("python"),
            }

    def _local_files(self) -> dict[str, str]:
        """Where each content already lies in a version this node holds."""
        found = {}
        for unit in self.units.values():
            if unit.get("path"):
                for rel, digest in unit["manifest"].items():
                    found[digest] = os.path.join(unit["path"], *rel.split("/"))
        return found

    def collect_garbage(self, running: Collection[str] = ()) -> None:
        """Unpin the versions no task can still be reading (``running``: the tasks running
        now), and let the host store delete what no node pins."""
        if self.host is None or self.node is None:
            return
        live = {os.path.basename(u["path"]) for u in self.units.values() if u.get("path")}
        for name, versions in list(self.retired.items()):
            keep = [(v, tasks) for v, tasks in versions if not tasks.isdisjoint(running)][
                -_MAX_RETIRED:
            ]
            for version, _ in versions:
                if version not in live and all(version != v for v, _ in keep):
                    self.node.unpin(version)
                    finder.forget_folder(os.path.join(self.host.versions, version))
            if keep:
                self.retired[name] = keep
            else:
                del self.retired[name]
        self.host.collect()

    def remove(self) -> None:
        """The node closes: its pins go, and with them what no other node uses."""
        if self.host is not None and self.node is not None:
            self.host.release(self.node)
            self.node = None


def _checked(found: dict[str, bytes]) -> dict[str, bytes]:
    for digest, data in found.items():
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"a fetched file does not match its digest {digest[:12]}")
    return found


_FOLDS: dict[str, bool] = {}


def _folds_case(folder: str) -> bool:
    """Whether the file system under ``folder`` takes ``A`` and ``a`` for one name."""
    if folder not in _FOLDS:
        probe = os.path.join(folder, f".Case-{os.getpid()}")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
            _FOLDS[folder] = os.path.exists(probe.lower())
        except OSError:
            _FOLDS[folder] = sys.platform in ("darwin", "win32")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(probe)
    return _FOLDS[folder]


def reload_changed() -> bool:
    """Whether a switch forgets only what the change made stale (the default), or every
    module of a changed unit: Dask's config ``shipit.reload: unit`` on the node (e.g.
    ``DASK_SHIPIT__RELOAD=unit``), for code whose imports the text scan misreads."""
    import dask.config

    return str(dask.config.get("shipit.reload", "changed")).lower() != "unit"


def dedicated_process(node: Any) -> bool:
    """True where this node's process runs nothing but Dask, so switching its modules
    harms no user object: a worker a nanny started, a ``dask scheduler`` / ``dask worker``
    command, or a process that said so (``shipit.switch-modules`` in Dask's config, as the
    shipit command does for its embedded cluster). A notebook's or a script's in-process
    cluster keeps its modules."""
    import dask.config

    configured = dask.config.get("shipit.switch-modules", None)
    if configured is not None:
        return bool(configured)
    if getattr(node, "nanny", None):  # a worker process a nanny spawned for it
        return True
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and str(getattr(spec, "name", "")).startswith("distributed.cli"):
        return True
    program = os.path.basename(sys.argv[0] if sys.argv else "")
    return program in _DASK_COMMANDS


_DASK_COMMANDS = frozenset(
    {"dask", "dask-scheduler", "dask-worker", "dask.exe", "dask-scheduler.exe", "dask-worker.exe"}
)


def node_store(node: Any, role: str, running: Callable[[], set[str]] = set) -> NodeStore:
    """The store of this Dask server: made once per process, taken over by each new agent."""
    old = getattr(node, "_shipit_store", None)
    store = NodeStore.take_over(old, role, running)
    if store is None:
        if old is not None and hasattr(old, "remove"):
            old.remove()  # an agent of another protocol: start afresh
        local_directory = getattr(node, "local_directory", None) or tempfile.gettempdir()
        host = None
        if dedicated_process(node):
            host = HostStore.open(local_directory) or HostStore.private(
                os.path.join(local_directory, f"shipit-{role}")
            )
        store = NodeStore(host, switching=host is not None, role=role, running=running)
    node._shipit_store = store
    return store


async def off_the_loop(func: Any) -> None:
    """Run blocking file work in a thread; inline when the interpreter is shutting down and
    takes no new threads (a cluster closed at exit)."""
    try:
        done = asyncio.get_running_loop().run_in_executor(None, func)
    except RuntimeError:  # "cannot schedule new futures after shutdown"
        func()
        return
    await done
