"""What runs on the scheduler and on the workers.

This module imports only the standard library and ``distributed``: the client pickles it
by value, so nodes run it whether or not shipit is installed there.

One scheduler plugin and one worker plugin, each registered once under the name
``shipit``, carry every unit: the scheduler holds the current version of each unit (its
manifest and file bytes) and answers three handlers; each node keeps every version in a
folder of its own and switches ``sys.path`` and ``sys.modules`` from one to the next.

- ``shipit_push``   client -> scheduler: new unit versions; the scheduler applies them
                    to itself, then to every worker, and reports per node.
- ``shipit_state``  the current versions: a joining worker catches up from it.
- ``shipit_fetch``  file bytes by digest, for a worker that lacks some.
- ``shipit_apply``  scheduler -> worker (installed on each worker by the worker plugin).
"""

from __future__ import annotations

import _imp
import asyncio
import contextlib
import hashlib
import importlib
import io
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

from .hoststore import HostStore

PLUGIN_NAME = "shipit"
PROTOCOL = 1
ERROR_KEY = "!error"  # no unit can have this name
APPLY_TIMEOUT = 300.0  # seconds a worker may take to apply one push
# Version folders kept per unit: the live one, and the newest other (which may be a folder
# staged by the next push but not switched to yet: garbage collection runs in the background).
_KEEP_VERSIONS = 2

logger = logging.getLogger("distributed.shipit")


def _in_client_process() -> bool:
    """True where this node shares a shipit client's process (an in-process LocalCluster).

    There the code on disk is already the code, and purging modules would pull them out
    from under the user's own objects. The flag is set when a Shipper is created, so the
    worker processes a LocalCluster spawns (which re-import the parent's main module,
    and with it shipit) do not carry it.
    """
    return bool(getattr(sys.modules.get("shipit.ship"), "CLIENT_PROCESS", False))


_HEX = frozenset("0123456789abcdef")
_LINK_MODE = 0o120000


def _check_digest(digest: object) -> None:
    if not (isinstance(digest, str) and len(digest) == 64 and _HEX.issuperset(digest)):
        raise ValueError(f"refused: {digest!r} is not a sha256 digest")


def _check_path(rel: object) -> None:
    """A path from a message may name a file inside a version folder, and nothing else:
    no absolute path, no "..", no drive letter, no empty or "." part (and on Windows, where
    they are separators or streams, no backslash or colon)."""
    odd = "\0\\:" if os.name == "nt" else "\0"
    if (
        not isinstance(rel, str)
        or not rel
        or rel.startswith("/")
        or rel[1:2] == ":"
        or any(c in odd for c in rel)
        or any(part in ("", ".", "..") for part in rel.split("/"))
    ):
        raise ValueError(f"refused: unsafe path {rel!r}")


def check_unit(unit: Any, known: Any = None) -> None:
    """Raise ValueError unless a unit from a message is safe to write under the store: its
    name an import name, its digests sha256, its paths inside its own folder. Entries
    equal to ``known`` (the manifest this node checked and holds already) pass: a save of
    one file in a 2,000-file package checks one entry."""
    name = unit.get("name") if isinstance(unit, dict) else None
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"refused: {name!r} is not a unit name")
    _check_digest(unit.get("digest"))
    manifest = unit.get("manifest", {})
    if not isinstance(manifest, dict):
        raise ValueError(f"refused: the manifest of {name} is not a mapping")
    known = known or {}
    for rel, digest in manifest.items():
        if known.get(rel) != digest:
            _check_path(rel)
            _check_digest(digest)


class Payloads:
    """File bytes by digest from pushed zips, each file read out only when asked for: a node
    whose host store already holds a file (another node wrote it) never inflates it. As in
    ``_unzip``, names in a zip only select manifest entries; link entries are refused."""

    def __init__(self, payloads: dict[str, bytes], manifests: dict[str, dict[str, str]]) -> None:
        self._members: dict[str, tuple[zipfile.ZipFile, str]] = {}
        for name, data in payloads.items():
            zf = zipfile.ZipFile(io.BytesIO(data))
            for info in zf.infolist():
                member = info.filename
                if (info.external_attr >> 16) & 0o170000 == _LINK_MODE:
                    raise ValueError(f"refused: {member!r} is a link")
                digest = manifests[name].get(member)
                if digest is None:
                    raise ValueError(f"{member}: not in the manifest of {name}")
                self._members[digest] = (zf, member)

    def __contains__(self, digest: object) -> bool:
        return digest in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def get(self, digest: str) -> bytes | None:
        return self.read(digest) if digest in self._members else None

    def read(self, digest: str) -> bytes:
        zf, member = self._members[digest]
        content = zf.read(member)
        if hashlib.sha256(content).hexdigest() != digest:
            raise ValueError(f"{member}: content does not match its manifest entry")
        return content


def _unzip(data: bytes, manifest: dict[str, str]) -> dict[str, bytes]:
    """Every file's bytes by digest from a pushed zip, each checked against the manifest.

    Only the bytes are kept; what the files are called comes from the checked manifest,
    so no name in the zip is ever written. A link entry is refused all the same.
    """
    payload = Payloads({"": data}, {"": manifest})
    return {digest: payload.read(digest) for digest in payload}


def _manifest_of(units: dict[str, dict[str, Any]], unit: Any) -> Any:
    """The manifest this node holds for a unit named in a message, if any."""
    if not isinstance(unit, dict):
        return None
    held = units.get(str(unit.get("name")))
    return held.get("manifest") if isinstance(held, dict) else None


def _purge_modules(name: str) -> int:
    """Forget a top-level module and all its submodules, so the next import reads disk."""
    gone = [m for m in sys.modules if m == name or m.startswith(name + ".")]
    for m in gone:
        del sys.modules[m]
    return len(gone)


class NodeStore:
    """The shipped units of one process: their version folders and their place in sys.path."""

    protocol = PROTOCOL

    def __init__(
        self,
        directory: str,
        activate: bool = True,
        shared: HostStore | None = None,
        lock: int | None = None,
    ) -> None:
        self.directory = directory
        self.activate = activate
        self.shared = shared  # file contents shared with the other nodes of this host
        self.lock_fd = lock  # held while this process lives: the folder is in use
        self.units: dict[str, dict[str, Any]] = {}  # name -> digest, manifest, path
        self.generation = 0
        self.lock = asyncio.Lock()

    def digests(self) -> dict[str, str]:
        return {name: unit["digest"] for name, unit in self.units.items()}

    async def apply(
        self,
        generation: int,
        changed: list[dict[str, Any]],
        removed: list[str],
        blobs: Any,
        fetch: Any = None,
    ) -> dict[str, str]:
        """Bring this node to ``generation``: stage changed units on disk, then switch."""
        for unit in changed:
            check_unit(unit, _manifest_of(self.units, unit))
        for name in removed:
            check_unit({"name": name, "digest": "0" * 64})
        async with self.lock:
            if generation < self.generation:  # a newer push got here first
                return self.digests()
            changed = [
                u for u in changed if self.units.get(u["name"], {}).get("digest") != u["digest"]
            ]
            removed = [name for name in removed if name in self.units]
            if self.activate and (changed or removed):
                local = self._local_files()
                needed = {
                    d
                    for u in changed
                    for d in u["manifest"].values()
                    if d not in local and not self._stored(d) and d not in blobs
                }
                if needed:
                    if fetch is None:
                        raise RuntimeError(
                            f"{len(needed)} file(s) missing and nowhere to fetch them"
                        )
                    fetched = await fetch(sorted(needed))
                    blobs = _Chain(fetched, blobs)
                loop = asyncio.get_running_loop()
                staged = await loop.run_in_executor(None, self._stage_all, changed, blobs, local)
                self._switch(changed, staged, removed)
                # Old versions are deleted after the reply: the push does not wait on rmtree.
                loop.run_in_executor(None, self._collect_garbage)
            elif not self.activate:
                for u in changed:
                    self.units[u["name"]] = {
                        "digest": u["digest"],
                        "manifest": u["manifest"],
                        "path": None,
                    }
                for name in removed:
                    self.units.pop(name, None)
            self.generation = generation
            return self.digests()

    def _local_files(self) -> dict[str, str]:
        """Where each file digest already lies on this node, to link instead of copy."""
        found = {}
        for unit in self.units.values():
            for rel, digest in unit["manifest"].items():
                found[digest] = os.path.join(unit["path"], rel)
        return found

    def _version_dir(self, unit: dict[str, Any]) -> str:
        return os.path.join(self.directory, f"{unit['name']}-{unit['digest'][:16]}")

    def _stored(self, digest: str) -> bool:
        return self.shared is not None and os.path.exists(self.shared.path(digest))

    def _stage_all(
        self, changed: list[dict[str, Any]], blobs: Any, local: dict[str, str]
    ) -> dict[str, dict[str, Any]]:
        if self.shared is None:
            return {u["name"]: self._stage(u, blobs, local) for u in changed}
        with self.shared.locked():  # the other nodes of this host link what this one writes
            return {u["name"]: self._stage(u, blobs, local) for u in changed}

    def _place(self, digest: str, dest: str, blobs: Any, local: dict[str, str]) -> None:
        """Put a file's content at ``dest``: a link to the host store, else its own copy.
        Shipped files are never written in place, so links never see a change."""
        shared = self.shared
        if shared is not None and shared.link(digest, dest):
            return
        data = blobs.get(digest)
        if data is None and shared is not None:
            with open(local[digest], "rb") as f:
                data = f.read()
        if data is not None:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            with open(fd, "wb") as f:
                f.write(data)
            # Only once whole does the file enter the store: a crash never leaves half a file.
            if shared is not None and not shared.adopt(digest, dest):
                logger.warning("shipit: cannot link into %s; each node keeps its own files", shared)
                self.shared = None
            return
        try:
            os.link(local[digest], dest)
        except OSError:
            shutil.copyfile(local[digest], dest)

    def _stage(self, unit: dict[str, Any], blobs: Any, local: dict[str, str]) -> dict[str, Any]:
        """Write what the new version needs beside the live one; nothing live changes here.

        A unit seen before is staged as a patch: only its new and changed files, which the
        switch moves into the live folder as it renames it to the new version's name. So
        saving one file of a 2,000-file package moves one file, not 2,000.
        """
        final = self._version_dir(unit)
        if os.path.isdir(final):  # complete: folders get their final name only when whole
            return {"path": final}
        old = self.units.get(unit["name"])
        if old is not None and not os.path.isdir(old["path"] or ""):
            old = None
        before = old["manifest"] if old is not None else {}
        files = {rel: d for rel, d in unit["manifest"].items() if before.get(rel) != d}
        os.makedirs(self.directory, exist_ok=True)
        tmp = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            made: set[str] = set()
            for rel, digest in files.items():
                dest = os.path.join(tmp, *rel.split("/"))
                folder = os.path.dirname(dest)
                if folder not in made:
                    os.makedirs(folder, exist_ok=True)
                    made.add(folder)
                self._place(digest, dest, blobs, local)
            if old is None:
                os.makedirs(tmp, exist_ok=True)  # a unit with no files is still a folder
                os.rename(tmp, final)
                return {"path": final}
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        gone = [rel for rel in before if rel not in unit["manifest"]]
        return {"path": final, "patch": tmp, "old": old["path"], "files": list(files), "gone": gone}

    def _switch(
        self, changed: list[dict[str, Any]], staged: dict[str, dict[str, Any]], removed: list[str]
    ) -> None:
        """Point imports at the new versions, holding the import lock so no import sees half."""
        _imp.acquire_lock()
        try:
            for stage in staged.values():
                if "patch" in stage:
                    _apply_patch(stage)
            for name in [*staged, *removed]:
                old = self.units.pop(name, None)
                if old is not None:
                    with contextlib.suppress(ValueError):
                        sys.path.remove(old["path"])
                    sys.path_importer_cache.pop(old["path"], None)
                _purge_modules(name)
            for unit in changed:
                path = staged[unit["name"]]["path"]
                sys.path.insert(0, path)
                self.units[unit["name"]] = {
                    "digest": unit["digest"],
                    "manifest": unit["manifest"],
                    "path": path,
                }
            importlib.invalidate_caches()
        finally:
            _imp.release_lock()

    def remove(self) -> None:
        """Delete this node's version folders, and what no other node of the host links."""
        shutil.rmtree(self.directory, ignore_errors=True)
        if self.lock_fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(f"{self.directory}.lock")
            os.close(self.lock_fd)
            self.lock_fd = None
        if self.shared is not None:
            self.shared.collect(wait=True)

    def _collect_garbage(self) -> None:
        """Delete version folders beyond the newest few of each unit."""
        live = {u["path"] for u in self.units.values()}
        by_unit: dict[str, list[tuple[float, str]]] = {}
        with contextlib.suppress(FileNotFoundError), os.scandir(self.directory) as entries:
            for entry in entries:
                if ".tmp-" in entry.name or not entry.is_dir():
                    continue
                name = entry.name.rpartition("-")[0]
                by_unit.setdefault(name, []).append((entry.stat().st_mtime, entry.path))
        for name, versions in by_unit.items():
            keep = 0 if name not in self.units else _KEEP_VERSIONS
            for _, path in sorted(versions, reverse=True)[keep:]:
                if path not in live:
                    shutil.rmtree(path, ignore_errors=True)
        if self.shared is not None:
            self.shared.collect()


class _Chain:
    """Look-ups in the first mapping, then the second."""

    def __init__(self, first: dict[str, bytes], second: Any) -> None:
        self.first, self.second = first, second

    def __contains__(self, digest: object) -> bool:
        return digest in self.first or digest in self.second

    def get(self, digest: str) -> bytes | None:
        data = self.first.get(digest)
        return data if data is not None else self.second.get(digest)


def _apply_patch(stage: dict[str, Any]) -> None:
    """Rename the live folder to the new version's name, then move the staged files in."""
    final, tmp = stage["path"], stage["patch"]
    os.rename(stage["old"], final)
    for rel in stage["files"]:
        dest = os.path.join(final, *rel.split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.replace(os.path.join(tmp, *rel.split("/")), dest)
        _drop_bytecode(dest)
    for rel in stage["gone"]:
        dest = os.path.join(final, *rel.split("/"))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
        _drop_bytecode(dest)
        _prune_empty(os.path.dirname(dest), final)
    shutil.rmtree(tmp, ignore_errors=True)


def _drop_bytecode(source: str) -> None:
    """A .pyc records its source's mtime in whole seconds: a same-size rewrite within one
    second would pass its check, so drop it with the source it belonged to."""
    if not source.endswith(".py"):
        return
    folder, name = os.path.split(source)
    stem = name[:-3] + "."
    with (
        contextlib.suppress(FileNotFoundError),
        os.scandir(os.path.join(folder, "__pycache__")) as entries,
    ):
        for entry in entries:
            if entry.name.startswith(stem) and entry.name.endswith(".pyc"):
                os.unlink(entry.path)


def _prune_empty(folder: str, top: str) -> None:
    """Remove folders left with nothing but bytecode: an empty folder would import as a
    namespace package, and a deleted subpackage must not be importable."""
    while folder != top and folder.startswith(top):
        try:
            left = [e for e in os.listdir(folder) if e != "__pycache__"]
        except FileNotFoundError:
            return
        if left:
            return
        shutil.rmtree(folder, ignore_errors=True)
        folder = os.path.dirname(folder)


async def _off_the_loop(func: Any) -> None:
    """Run blocking file work in a thread; inline when the interpreter is shutting down and
    takes no new threads (a cluster closed at exit)."""
    try:
        done = asyncio.get_running_loop().run_in_executor(None, func)
    except RuntimeError:  # "cannot schedule new futures after shutdown"
        func()
        return
    await done


def _node_store(role: str, local_directory: str, fallback: str) -> NodeStore:
    """A node's store: in the host's shared store if there is one, else in ``fallback``."""
    if _in_client_process():  # the client's own files are the code here
        return NodeStore(fallback, activate=False)
    shared = HostStore.open(local_directory)
    if shared is not None:
        try:
            directory, lock = shared.node_folder(role)
            return NodeStore(directory, shared=shared, lock=lock)
        except OSError as e:
            logger.warning("shipit: not sharing files on this host: %s", _error_text(e))
    return NodeStore(fallback)


def _error_text(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if str(e) else text


def _lost_worker_text(e: BaseException, timeout: float) -> str:
    """Why a worker did not answer a push; a dropped connection says what it means."""
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return f"the worker did not answer within {timeout:g} s; the next sync brings it up to date"
    if isinstance(e, (OSError, EOFError)):  # distributed's CommClosedError is an OSError
        return (
            f"the worker went away during the sync ({type(e).__name__}); "
            "a worker that joins or rejoins takes the current code"
        )
    return _error_text(e)


class ShipitSchedulerPlugin(SchedulerPlugin):
    """Holds the current version of every unit and fans pushes out to the workers."""

    name = PLUGIN_NAME

    def __init__(self, agent: str) -> None:
        self.agent = agent

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.units: dict[str, dict[str, Any]] = {}  # name -> digest, manifest, project
        self.blobs: dict[str, bytes] = {}
        self.generation = 0
        self.lock = asyncio.Lock()
        self.behind: set[str] = set()  # workers whose last push failed: the next sync retries
        local_directory = getattr(scheduler, "local_directory", None) or tempfile.gettempdir()
        self.store = _node_store(
            "scheduler",
            local_directory,
            os.path.join(local_directory, f"shipit-scheduler-{os.getpid()}"),
        )
        scheduler.handlers.update(
            shipit_push=self.push, shipit_state=self.state, shipit_fetch=self.fetch
        )
        scheduler.set_metadata(keys=["shipit-agent"], value=self.agent)

    async def close(self) -> None:
        await _off_the_loop(self.store.remove)

    def state(self) -> dict[str, Any]:
        return {"agent": self.agent, "generation": self.generation, "units": self.units}

    def fetch(self, digests: list[str]) -> dict[str, bytes]:
        return {d: self.blobs[d] for d in digests if d in self.blobs}

    async def push(
        self,
        project: str,
        units: list[dict[str, Any]],
        payloads: dict[str, bytes],
        timeout: float = APPLY_TIMEOUT,
    ) -> dict[str, Any]:
        """Take a project's full unit list; ship what changed and drop what it no longer has.

        ``units`` holds every unit of the project as {name, digest} and, for the ones that
        changed, their manifest; ``payloads`` maps unit name to a zip of the files the
        scheduler may lack. Replies "missing" with the digests it still needs.
        """
        try:
            for unit in units:
                check_unit(unit, _manifest_of(self.units, unit))
        except ValueError as e:
            logger.warning("shipit: push from %s %s", project, e)
            return {"status": "refused", "error": str(e)}
        async with self.lock:
            started = time.perf_counter()
            names = {u["name"] for u in units}
            changed = [
                u for u in units if self.units.get(u["name"], {}).get("digest") != u["digest"]
            ]
            without_manifest = [u["name"] for u in changed if "manifest" not in u]
            if without_manifest:
                return {"status": "missing-units", "units": without_manifest}
            blobs: dict[str, bytes] = {}
            for u in changed:
                if u["name"] in payloads:
                    blobs.update(_unzip(payloads[u["name"]], u["manifest"]))
            missing = sorted(
                {d for u in changed for d in u["manifest"].values()}
                - blobs.keys()
                - self.blobs.keys()
            )
            if missing:
                return {"status": "missing", "digests": missing}
            removed = [
                n for n, u in self.units.items() if u["project"] == project and n not in names
            ]
            if not changed and not removed:
                retried = await self._catch_up_lagging(timeout)
                return {
                    "status": "OK",
                    "generation": self.generation,
                    "nodes": retried,
                    "changed": [],
                }

            others = [
                u["name"]
                for u in changed
                if self.units.get(u["name"], {}).get("project", project) != project
            ]
            for name in others:
                logger.warning("shipit: unit %r now comes from %s", name, project)
            for u in changed:
                self.units[u["name"]] = {
                    "digest": u["digest"],
                    "manifest": u["manifest"],
                    "project": project,
                }
            for name in removed:
                del self.units[name]
            self.blobs.update(blobs)
            live = {d for u in self.units.values() for d in u["manifest"].values()}
            self.blobs = {d: b for d, b in self.blobs.items() if d in live}
            self.generation += 1
            update: dict[str, Any] = {
                "generation": self.generation,
                "changed": [{k: u[k] for k in ("name", "digest", "manifest")} for u in changed],
                "removed": removed,
            }
            # The scheduler unpickles task specs too: it takes the code before any worker.
            nodes: dict[str, dict[str, Any]] = {}
            try:
                await self.store.apply(blobs=blobs, fetch=self._fetch_local, **update)
                nodes[self.scheduler.address] = {"role": "scheduler", "ok": True}
            except Exception as e:
                logger.exception(
                    "shipit: the scheduler could not apply generation %d", self.generation
                )
                nodes[self.scheduler.address] = {
                    "role": "scheduler",
                    "ok": False,
                    "error": _error_text(e),
                }
            nodes.update(await self._to_workers(update, payloads, timeout))
            logger.info(
                "shipit: generation %d (%s) on %d node(s) in %.0f ms",
                self.generation,
                ", ".join(u["name"] for u in changed) or "removals",
                len(nodes),
                (time.perf_counter() - started) * 1000,
            )
            return {
                "status": "OK",
                "generation": self.generation,
                "nodes": nodes,
                "changed": [u["name"] for u in changed],
                "removed": removed,
            }

    async def _fetch_local(self, digests: list[str]) -> dict[str, bytes]:
        return self.fetch(digests)

    async def _catch_up_lagging(self, timeout: float) -> dict[str, dict[str, Any]]:
        """Bring the workers a past push failed on to the current version, even when
        nothing changed: running the same sync again is how a user repairs a node."""
        self.behind &= set(self.scheduler.workers)
        if not self.behind:
            return {}
        current = [
            {"name": n, **{k: u[k] for k in ("digest", "manifest")}} for n, u in self.units.items()
        ]
        update = {"generation": self.generation, "changed": current, "removed": []}
        # base -1 matches no worker's generation: each takes the scheduler's whole state.
        return await self._to_workers(update, {}, timeout, sorted(self.behind), base=-1)

    async def _to_workers(
        self,
        update: dict[str, Any],
        payloads: dict[str, bytes],
        timeout: float,
        addresses: list[str] | None = None,
        base: int | None = None,
    ) -> dict[str, dict[str, Any]]:
        names = {u["name"] for u in update["changed"]}
        msg = {
            **update,
            "base": update["generation"] - 1 if base is None else base,
            "payloads": {n: p for n, p in payloads.items() if n in names},
        }

        async def one(address: str) -> dict[str, Any]:
            for _attempt in range(2):
                try:
                    reply = await asyncio.wait_for(
                        self.scheduler.rpc(address).shipit_apply(**msg), timeout
                    )
                except Exception as e:
                    return {"role": "worker", "ok": False, "error": _lost_worker_text(e, timeout)}
                if reply is not None and ERROR_KEY in reply:
                    return {"role": "worker", "ok": False, "error": reply[ERROR_KEY]}
                if reply is not None:
                    stale = [
                        u["name"] for u in update["changed"] if reply.get(u["name"]) != u["digest"]
                    ]
                    if stale:
                        return {
                            "role": "worker",
                            "ok": False,
                            "error": f"still on old {', '.join(stale)}",
                        }
                    return {"role": "worker", "ok": True}
                # None: a worker that joined a moment ago has not installed the handler yet.
                await asyncio.sleep(0.2)
                if address not in self.scheduler.workers:
                    break
            return {
                "role": "worker",
                "ok": False,
                "error": "the shipit worker plugin did not answer",
            }

        if addresses is None:
            addresses = list(self.scheduler.workers)
        replies = await asyncio.gather(*(one(a) for a in addresses))
        for address, reply in zip(addresses, replies, strict=True):
            (self.behind.discard if reply["ok"] else self.behind.add)(address)
        return dict(zip(addresses, replies, strict=True))


class ShipitWorkerPlugin(WorkerPlugin):
    """Installs the ``shipit_apply`` handler on a worker and catches it up with the scheduler."""

    name = PLUGIN_NAME

    def __init__(self, agent: str) -> None:
        self.agent = agent

    async def setup(self, worker: Any) -> None:
        store = getattr(worker, "_shipit_store", None)
        if store is None or getattr(store, "protocol", None) != PROTOCOL:
            store = _node_store(
                "worker", worker.local_directory, os.path.join(worker.local_directory, "shipit")
            )
            worker._shipit_store = store
        self.worker = worker
        self.store = store
        worker.handlers["shipit_apply"] = self.apply
        await self.catch_up()

    async def teardown(self, worker: Any) -> None:
        """A closing worker deletes its files; a plugin replaced by a newer agent keeps them
        (the store outlives the plugin, and live modules may still read their files)."""
        if getattr(worker.status, "name", "") in ("closing", "closing_gracefully", "closed"):
            await _off_the_loop(self.store.remove)

    async def fetch(self, digests: list[str]) -> dict[str, bytes]:
        found = await self.worker.scheduler.shipit_fetch(digests=digests)
        lacking = set(digests) - set(found)
        if lacking:
            raise RuntimeError(f"the scheduler no longer holds {len(lacking)} file(s); sync again")
        return found

    async def catch_up(self) -> None:
        """Take the scheduler's whole current state: what a joining or lagging worker needs."""
        state = await self.worker.scheduler.shipit_state()
        if state is None:  # no scheduler plugin yet
            return
        units = state["units"]
        changed = [{"name": n, **u} for n, u in units.items()]
        removed = [n for n in self.store.units if n not in units]
        await self.store.apply(state["generation"], changed, removed, {}, self.fetch)

    async def apply(
        self,
        generation: int,
        base: int,
        changed: list[dict[str, Any]],
        removed: list[str],
        payloads: dict[str, bytes],
    ) -> dict[str, str]:
        """Returns the unit digests now live here, or {ERROR_KEY: why} (not an exception,
        which the RPC layer would wrap beyond recognition)."""
        try:
            for unit in changed:  # before anything, whoever sent it
                check_unit(unit, _manifest_of(self.store.units, unit))
            if self.store.generation != base:  # missed a push (joined, failed, restarted)
                await self.catch_up()
                return self.store.digests()
            blobs = Payloads(payloads, {u["name"]: u["manifest"] for u in changed})
            return await self.store.apply(generation, changed, removed, blobs, self.fetch)
        except Exception as e:
            logger.exception("shipit: could not apply generation %d", generation)
            return {ERROR_KEY: _error_text(e)}
