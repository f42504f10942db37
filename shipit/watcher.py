"""File events become debounced change sets. The only module that imports watchdog.

Example::

    with ChangeWatcher([Path("src")], accept=lambda p: p.endswith(".py")) as watcher:
        for changes in watcher:
            print(sorted(changes.paths))
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

logger = logging.getLogger(__name__)

# Events that say nothing about content ("closed_no_write" is counted: a reader's mark).
_IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})
# How long a caller waits for the watcher to see its own read of a file.
_READ_SEEN_WAIT = 0.5
# After these a file is still being written; "closed" (close after write) ends that.
_WRITING_EVENTS = frozenset({"created", "modified"})
# Once every file in a burst was closed after writing, the burst ends after this much quiet
# instead of the full debounce: a save is then shipped about as soon as it is whole.
_SETTLE = 0.002

StatKey = tuple[int, int, int]  # size, mtime_ns, inode, as shipit.pack reads them
# A file's status when it was closed after writing (or moved into place), and the count of
# writing events the watcher had seen for it then.
Whole = tuple[StatKey, int]
_Event = tuple[float, str, bool, "Whole | None"]  # when, path, being written, if whole: when


@dataclass(frozen=True)
class Changes:
    """Paths that changed in one burst; empty on a quiet tick. ``first_event`` is a
    ``time.perf_counter()`` reading taken when the burst's first event arrived; ``settled``
    says every file in it was closed after writing (or moved, or deleted). ``whole`` has,
    for each file whose last event was a close after writing or a move into place, its
    status at that moment: the file is whole while its status is still that (a writer that
    truncates it again changes it)."""

    paths: frozenset[str]
    first_event: float = 0.0
    settled: bool = False
    whole: Mapping[str, Whole] = field(default_factory=dict)
    retry: bool = False  # files deferred earlier: take them as they are once they hold still

    def __bool__(self) -> bool:
        return bool(self.paths)


def _status(path: str) -> StatKey | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class _Collector(FileSystemEventHandler):
    def __init__(self, accept: Callable[[str], bool], events: queue.SimpleQueue[_Event]):
        self.accept = accept
        self.events = events
        self.writes: dict[str, int] = {}  # path -> writing events seen
        self.reads: dict[str, int] = {}  # path -> closes after reading seen
        self.closed: dict[str, Whole] = {}  # path -> its last close after writing
        # path -> {n: status}: at the n-th close after reading, the status of the file if it
        # had been closed after writing with nothing written since (else None).
        self.at_read: dict[str, dict[int, StatKey | None]] = {}

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type == "closed_no_write":
            read = os.fsdecode(event.src_path)
            n = self.reads[read] = self.reads.get(read, 0) + 1
            closed = self.closed.get(read)
            clean = closed is not None and closed[1] == self.writes.get(read, 0)
            states = self.at_read.setdefault(read, {})
            states[n] = closed[0] if clean and closed is not None else None
            states.pop(n - 64, None)  # only the last few matter
            return
        if event.event_type in _IGNORED_EVENTS:
            return
        if event.is_directory and event.event_type == "modified":
            return  # comes with the event of the file inside, which says more
        now = time.perf_counter()
        writing = event.event_type in _WRITING_EVENTS and not event.is_directory
        whole_at = event.event_type in ("closed", "moved") and not event.is_directory
        for path in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(path)
            if writing:
                self.writes[path] = self.writes.get(path, 0) + 1
            # A folder event may add or remove a whole package: let the caller look.
            if path and (event.is_directory or self.accept(path)):
                whole = None
                if whole_at:
                    status = _status(path)
                    whole = None if status is None else (status, self.writes.get(path, 0))
                    if whole is not None:
                        self.closed[path] = whole
                self.events.put((now, path, writing, whole))


class ChangeWatcher:
    """Watch folders recursively and yield one :class:`Changes` per burst of events.

    A burst ends when every file in it was closed after writing and a couple of
    milliseconds passed quietly, else when no accepted event arrived for ``debounce`` seconds
    (an editor that saves in several writes), or ``max_burst``
    seconds after it began (a long ``git checkout`` ships in a few steps, never stalls).
    With no events, an empty ``Changes`` comes every ``tick`` seconds so that the caller can
    look after its connection. Iteration ends when ``stop`` is set.
    """

    def __init__(
        self,
        roots: Iterable[Path],
        accept: Callable[[str], bool],
        *,
        debounce: float = 0.01,
        max_burst: float = 0.5,
        tick: float = 1.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.roots = tuple(roots)
        self.debounce = debounce
        self.max_burst = max_burst
        self.tick = tick
        self.stop = stop or threading.Event()
        self._events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        self._observer = Observer()
        handler = self._collector = _Collector(accept, self._events)
        for root in self.roots:
            self._observer.schedule(handler, str(root), recursive=True)

    def __enter__(self) -> ChangeWatcher:
        self._observer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.stop.set()
        self._observer.stop()
        if self._observer.is_alive():
            self._observer.join(timeout=5)

    def reads_seen(self, path: str) -> int:
        """How many closes after reading the watcher has seen for ``path``."""
        return self._collector.reads.get(path, 0)

    def wait_for_reads(self, path: str, count: int) -> int:
        """Wait (a moment at most) until the watcher has seen ``count`` closes after reading
        ``path``; how many it has seen."""
        deadline = time.monotonic() + _READ_SEEN_WAIT
        while (seen := self.reads_seen(path)) < count and time.monotonic() < deadline:
            time.sleep(0.0002)
        return seen

    def writes_seen(self, path: str) -> int:
        """How many writing events (created, modified) the watcher has seen for ``path``."""
        return self._collector.writes.get(path, 0)

    def is_whole(self, path: str, status: StatKey, reads_before: int, reads: int) -> bool | None:
        """Whether ``path`` is whole as a caller read it with ``status``: the caller noted
        ``reads_seen`` before it opened the file ``reads`` times (the read, then marks).
        True when at every close after reading the watcher sees from then on, the file had
        been closed after writing with that status and nothing written since; False while a
        writer holds it, and where the watcher, behind on a loaded machine, has not seen
        those reads yet (the caller packs again later); None where it never saw it written.

        Events come in the kernel's order, so once the watcher has seen as many reads as the
        caller made, and the caller's last ones came after its read, what it knew at each of
        them covers the read itself; reads made earlier and seen late (another reader, this
        process's last pack) must agree too. Not knowing is never taken for whole: a timed
        guess let a file truncated for rewriting ship empty under load."""
        if not self.writes_seen(path):
            return None
        deadline = time.monotonic() + _READ_SEEN_WAIT
        while self.reads_seen(path) < reads_before + reads:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0002)
        known = self._collector.at_read.get(path, {})
        seen = range(reads_before + 1, self.reads_seen(path) + 1)
        return all(known.get(n, False) == status for n in seen)

    def __iter__(self) -> Iterator[Changes]:
        quiet_since = time.monotonic()
        while not self.stop.is_set():
            try:
                event = self._events.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() - quiet_since >= self.tick:
                    quiet_since = time.monotonic()
                    yield Changes(frozenset())
                continue
            yield self._burst(event)
            quiet_since = time.monotonic()

    def _burst(self, event: _Event) -> Changes:
        first, path, writing, status = event
        paths = {path}
        being_written = {path} if writing else set()
        whole = {path: status} if status is not None else {}
        deadline = time.perf_counter() + self.max_burst
        while (left := deadline - time.perf_counter()) > 0:
            quiet = self.debounce if being_written else min(self.debounce, _SETTLE)
            try:
                _, path, writing, status = self._events.get(timeout=min(quiet, left))
            except queue.Empty:
                break
            paths.add(path)
            if status is not None:
                whole[path] = status
            else:
                whole.pop(path, None)
            if writing:
                being_written.add(path)
            else:  # closed after writing, deleted or moved: this path is settled
                being_written.discard(path)
        return Changes(frozenset(paths), first, settled=not being_written, whole=whole)
