"""Packing: a unit's files become a content-addressed manifest and a deterministic zip.

Every ``.py`` file is compiled before anything ships, so a syntax error is caught on the
client, named by file and line, and the cluster keeps its last good code. A per-file cache
keyed by (size, mtime, inode) means a change to one file never rehashes the project.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import time
import zipfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StaleFile
from ..node.graph import computes_imports, module_name
from ..report import SyntaxProblem
from ..text import shown_path
from .discover import Unit
from .imports import guarded_names, names_in
from .reading import WholeFiles, mark_read, read_counted, read_settled
from .rules import PRIVATE_KEY, holds_private_key
from .syntax import compile_all
from .syntaxcache import SyntaxCache

logger = logging.getLogger(__name__)

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date zip can hold: no clock in the bytes
_ZIP_MODE = 0o100644 << 16  # regular file, rw-r--r--, whatever the local mode
# File times tick coarsely (a few ms): a file rewritten within one tick of being hashed keeps
# its size and mtime. Like git's "racily clean" entries, trust a cached digest only for files
# whose mtime is this much older than the moment they were hashed.
_RACY_NS = 100_000_000
# A file hashed within _RACY_NS of its last write is read again this long after that write, to
# see that it was not mid-write. A watcher's debounce is about this long: it rarely waits.
_SETTLE_NS = 10_000_000


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unit_digest(name: str, manifest: Mapping[str, str]) -> str:
    """The content hash of a unit: its name and every (path, file digest) pair, in order."""
    h = hashlib.sha256(f"shipit-unit-1\0{name}\n".encode())
    for path in sorted(manifest):
        h.update(f"{path}\0{manifest[path]}\n".encode())
    return h.hexdigest()


def digest_on_disk(unit: Unit) -> str:
    """The digest a sync would ship for this unit now, to compare with what nodes hold."""
    manifest = {}
    for rel in unit.files:
        with contextlib.suppress(OSError):  # vanished since the walk: the next sync drops it
            data = (unit.root / rel).read_bytes()
            if not holds_private_key(data):  # never shipped: not part of what nodes hold
                manifest[rel] = file_digest(data)
    manifest.update((rel, file_digest(data)) for rel, data in unit.generated)
    return unit_digest(unit.name, manifest)


@dataclass(frozen=True)
class Pack:
    """A unit at one moment: what ships and how it is named.

    ``manifest`` maps each file's path (relative to ``root``) to the sha256 of its bytes;
    ``digest`` names the whole unit and is what nodes confirm; ``file_sizes`` maps each
    path to its size in bytes.
    """

    name: str
    root: Path
    origin: str
    digest: str
    manifest: Mapping[str, str]
    file_sizes: Mapping[str, int]
    generated: Mapping[str, bytes] = field(default_factory=dict)  # files not on disk

    @property
    def size(self) -> int:
        return sum(self.file_sizes.values())

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(sorted(self.manifest))

    def read(self, path: str) -> bytes:
        """The bytes of one file, checked against the manifest."""
        if path in self.generated:
            return self.generated[path]
        try:
            data, _ = read_settled(self.root / path)
        except FileNotFoundError:
            raise StaleFile(self.root / path) from None
        if file_digest(data) != self.manifest[path]:
            raise StaleFile(self.root / path)
        return data

    def zip(self, paths: Iterable[str] | None = None, compress: bool = True) -> bytes:
        """A deterministic zip of ``paths`` (default: every file): same content, same bytes.
        Without ``compress`` files are stored as they are (cheaper where bytes cost nothing).

        >>> from shipit import plan
        >>> pack = plan("examples/montecarlo").packs[0]
        >>> pack.zip() == pack.zip()
        True
        """
        wanted = sorted(self.manifest if paths is None else set(paths))
        method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for path in wanted:
                info = zipfile.ZipInfo(path, date_time=_ZIP_DATE)
                info.external_attr = _ZIP_MODE
                info.create_system = 3
                zf.writestr(info, self.read(path), method, 1)
        return buffer.getvalue()


def _moved_since(fresh: Mapping[Path, tuple[tuple[int, int, int], str]]) -> list[Path]:
    """The recently written files whose status or content changed once ``_SETTLE_NS`` passed
    since their last write (a write sets the mtime as it starts: the content tells)."""
    if not fresh:
        return []
    newest = max(key[1] for key, _ in fresh.values())
    time.sleep(min(max(newest + _SETTLE_NS - time.time_ns(), 0), _SETTLE_NS) / 1e9)
    return [path for path, (key, digest) in fresh.items() if _changed(path, key, digest)]


def _changed(path: Path, key: tuple[int, int, int], digest: str) -> bool:
    try:
        data, now = read_settled(path)
    except (FileNotFoundError, StaleFile):
        return True
    return now != key or file_digest(data) != digest


@dataclass(frozen=True)
class _Entry:
    stat_key: tuple[int, int, int]
    digest: str
    size: int
    trusted: bool  # the mtime is old enough that a later write must change it
    private_key: bool = False  # never shipped


class Packer:
    """Turns units into packs, remembering each file's digest and each digest's syntax check.

    One Packer lives as long as a watch session, so that saving one file of a large
    package hashes and compiles one file. Sources that compiled once on this machine are
    not compiled again (see :mod:`shipit.project.syntaxcache`).
    """

    def __init__(self, syntax_cache: SyntaxCache | None = None) -> None:
        self._fresh: dict[Path, tuple[tuple[int, int, int], str]] = {}
        # What this pack read: each file's status, the watcher's count of reads before the
        # pack's last read of it, and how many times it then opened it.
        self._read: dict[Path, tuple[tuple[int, int, int], int, int]] = {}
        self._whole: WholeFiles | None = None
        self._entries: dict[Path, _Entry] = {}
        self._opened: dict[Path, int] = {}  # the watcher's count of reads after our last one
        self._compiled: dict[str, SyntaxProblem | None] = {}
        self._imports: dict[str, frozenset[str]] = {}  # .py digest -> names it imports
        self._guarded: dict[str, frozenset[str]] = {}  # ... of those, the optional ones
        self._sources: dict[str, bytes] = {}  # read by imported_names, for the next pack
        self._computed: set[str] = set()  # .py digests whose imports text cannot tell
        self._syntax_cache = syntax_cache or SyntaxCache()
        # Files of the last pack's units left out for their content: path -> why.
        self.held_back: dict[Path, str] = {}

    def pack(
        self,
        units: Sequence[Unit],
        changed: Collection[Path] | None = None,
        whole: WholeFiles | None = None,
    ) -> tuple[list[Pack], list[SyntaxProblem]]:
        """Pack every unit that compiles; return the packs and the problems of the rest.

        ``changed``, when given, names every file that may have changed since the last pack
        (a watcher knows): the others keep their cached digest without even a stat.
        ``whole``, a watcher, says whether each file just read is whole: closed after writing
        and nothing written since; one it sees being written raises :class:`StaleFile`
        (ship it once it is closed); where it does not know, the check below applies.

        A file written in the last moment may be mid-write even though its status held
        still while it was read: such files are read again once they are ``_SETTLE_NS``
        old (one wait per pack) unless ``whole`` knows, and the pack is made again if any
        changed. Raises
        :class:`StaleFile` if they never settle.
        """
        for _ in range(5):
            self._fresh, self._read, self._whole = {}, {}, whole
            result = self._pack_once(units, changed)
            known = (
                {
                    p: seen[1] >= 0 and whole.is_whole(str(p), *seen)
                    for p, seen in self._read.items()
                }
                if whole is not None
                else {}
            )
            writing = [p for p, verdict in known.items() if verdict is False]
            for path in writing:
                self.forget(path)
            if writing:
                raise StaleFile(writing[0])
            moved = _moved_since({p: v for p, v in self._fresh.items() if known.get(p) is None})
            if not moved:
                return result
            for path in moved:
                self.forget(path)
            changed = None if changed is None else {*changed, *moved}
        raise StaleFile(moved[0])

    def _pack_once(
        self, units: Sequence[Unit], changed: Collection[Path] | None
    ) -> tuple[list[Pack], list[SyntaxProblem]]:
        manifests: dict[str, dict[str, str]] = {}
        sizes: dict[str, dict[str, int]] = {}
        held_back: dict[Path, str] = {}
        to_compile: dict[str, tuple[str, bytes]] = {}
        for unit in units:
            manifest = manifests[unit.name] = {}
            file_sizes = sizes[unit.name] = {}
            for rel in unit.files:
                path = unit.root / rel
                entry, data = self._hash(path, changed is not None and path not in changed)
                if entry is None:  # vanished since discovery: not part of this snapshot
                    continue
                if entry.private_key:
                    if path not in self.held_back:
                        logger.info("not shipping %s: it %s", shown_path(path), PRIVATE_KEY)
                    held_back[path] = PRIVATE_KEY
                    continue
                manifest[rel] = entry.digest
                file_sizes[rel] = entry.size
                if rel.endswith(".py") and data is not None:
                    self._learn_imports(entry.digest, data)
                if rel.endswith(".py") and entry.digest not in self._compiled:
                    if data is None:
                        data = self._sources.get(entry.digest) or path.read_bytes()
                    to_compile[entry.digest] = (shown_path(path), data)
            for rel, data in unit.generated:
                manifest[rel], file_sizes[rel] = file_digest(data), len(data)
        self._check_syntax(to_compile)
        self._sources.clear()
        self.held_back = held_back

        packs, problems = [], []
        for unit in units:
            manifest = manifests[unit.name]
            # A cached problem names the path it was first seen at; name this one.
            found = [
                SyntaxProblem(shown_path(unit.root / rel), p.line, p.message, unit.name)
                for rel, digest in sorted(manifest.items())
                if rel.endswith(".py") and (p := self._compiled.get(digest)) is not None
            ]
            if found:
                problems.extend(found)
                continue
            packs.append(
                Pack(
                    name=unit.name,
                    root=unit.root,
                    origin=unit.origin,
                    digest=unit_digest(unit.name, manifest),
                    manifest=manifest,
                    file_sizes=sizes[unit.name],
                    generated=dict(unit.generated),
                )
            )
        return packs, problems

    def imported_names(self, units: Iterable[Unit]) -> frozenset[str]:
        """Top-level names the units' ``.py`` files import (see :mod:`shipit.project.imports`).

        Each file is read here at most once, for its digest, its imports and, at the next
        :meth:`pack`, its syntax check: discovery and packing share one read.
        """
        names: set[str] = set()
        for unit in units:
            for rel in unit.files:
                if not rel.endswith(".py"):
                    continue
                path = unit.root / rel
                entry, data = self._hash(path)
                if entry is None:  # vanished since the walk
                    continue
                if data is None and entry.digest not in self._imports:
                    data, _ = read_settled(path)
                if data is not None:
                    self._learn_imports(entry.digest, data)
                    if entry.digest not in self._compiled:
                        self._sources[entry.digest] = data
                names |= self._imports[entry.digest]
        return frozenset(names)

    def imports_of(self, packs: Iterable[Pack]) -> frozenset[str]:
        """The names the ``.py`` files of packs this packer made import; no file is read."""
        return frozenset(
            name
            for pack in packs
            for rel, digest in pack.manifest.items()
            if rel.endswith(".py")
            for name in self._imports.get(digest, ())
        )

    def computed_imports(self, packs: Iterable[Pack]) -> tuple[str, ...]:
        """The modules of these packs whose imports their text cannot tell (a computed name,
        ``__path__`` or ``sys.modules`` changed as they load): nodes reload each of them with
        any change in its unit (:mod:`shipit.node.graph`). No file is read."""
        found = (
            module_name(rel) for p in packs for rel, d in p.manifest.items() if d in self._computed
        )
        return tuple(sorted(name for name in found if name is not None))

    def optional_imports(
        self, packs: Iterable[Pack], unpacked: Iterable[Unit] = ()
    ) -> frozenset[str]:
        """The names the packs' (and ``unpacked`` units') ``.py`` files import only where a
        failed import is caught (:func:`~shipit.project.imports.guarded_names`); no reads."""
        digests = [d for pack in packs for rel, d in pack.manifest.items() if rel.endswith(".py")]
        for unit in unpacked:
            entries = (self._entries.get(unit.root / rel) for rel in unit.files)
            digests += [e.digest for e in entries if e is not None]
        guarded, plain = set[str](), set[str]()
        for digest in digests:
            here = self._guarded.get(digest, frozenset())
            guarded |= here
            plain |= self._imports.get(digest, frozenset()) - here
        return frozenset(guarded - plain)

    def _learn_imports(self, digest: str, data: bytes) -> None:
        if digest not in self._imports:
            self._imports[digest] = names_in(data)
            if guarded := guarded_names(data):
                self._guarded[digest] = guarded
            if computes_imports(data):
                self._computed.add(digest)

    def forget(self, path: Path) -> None:
        """Drop a file's cached digest (it was deleted or replaced)."""
        self._entries.pop(path, None)

    def _hash(self, path: Path, unchanged: bool = False) -> tuple[_Entry | None, bytes | None]:
        cached = self._entries.get(path)
        if unchanged and cached is not None and cached.trusted:
            return cached, None
        try:
            st = path.stat()
        except FileNotFoundError:
            self._entries.pop(path, None)
            return None, None
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        if cached is not None and cached.trusted and cached.stat_key == key:
            return cached, None
        hashed_at = time.time_ns()
        before = 0
        if self._whole is not None:
            # This packer's own earlier reads of the file seen first (-1: not in time), so
            # that none of them, seen late on a loaded machine, passes for this one.
            seen = self._whole.wait_for_reads(str(path), self._opened.get(path, 0))
            before = seen if seen >= self._opened.get(path, 0) else -1
        try:
            data, key, reads = read_counted(path, 5)
        except FileNotFoundError:
            return None, None
        if self._whole is not None:
            # Marks after the read: once the watcher has seen them, it has seen the read.
            reads += mark_read(path)
            self._opened[path] = max(before, 0) + reads
        self._read[path] = (key, before, reads)
        entry = _Entry(
            key, file_digest(data), len(data), key[1] < hashed_at - _RACY_NS,
            holds_private_key(data),
        )  # fmt: skip
        if not entry.trusted:
            self._fresh[path] = (key, entry.digest)
        self._entries[path] = entry
        return entry, data

    def _check_syntax(self, sources: Mapping[str, tuple[str, bytes]]) -> None:
        if not sources:
            return
        known = self._syntax_cache.known()
        items = [(digest, source) for digest, source in sources.items() if digest not in known]
        self._compiled.update((digest, None) for digest in sources if digest in known)
        results = compile_all(items)
        self._compiled.update(results)
        self._syntax_cache.add(digest for digest, problem in results.items() if problem is None)
