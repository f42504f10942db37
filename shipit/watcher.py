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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

logger = logging.getLogger(__name__)

# Events that say nothing about content.
_IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})
# After these a file is still being written; "closed" (close after write) ends that.
_WRITING_EVENTS = frozenset({"created", "modified"})
# Once every file in a burst was closed after writing, the burst ends after this much quiet
# instead of the full debounce: a save is then shipped about as soon as it is whole.
_SETTLE = 0.002

_Event = tuple[float, str, bool]  # when, path, still being written


@dataclass(frozen=True)
class Changes:
    """Paths that changed in one burst; empty on a quiet tick. ``first_event`` is a
    ``time.perf_counter()`` reading taken when the burst's first event arrived; ``settled``
    says every file in it was closed after writing (or moved, or deleted): none is half-written."""

    paths: frozenset[str]
    first_event: float = 0.0
    settled: bool = False

    def __bool__(self) -> bool:
        return bool(self.paths)


class _Collector(FileSystemEventHandler):
    def __init__(self, accept: Callable[[str], bool], events: queue.SimpleQueue[_Event]):
        self.accept = accept
        self.events = events

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED_EVENTS:
            return
        if event.is_directory and event.event_type == "modified":
            return  # comes with the event of the file inside, which says more
        now = time.perf_counter()
        writing = event.event_type in _WRITING_EVENTS and not event.is_directory
        for path in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(path)
            # A folder event may add or remove a whole package: let the caller look.
            if path and (event.is_directory or self.accept(path)):
                self.events.put((now, path, writing))


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
        handler = _Collector(accept, self._events)
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
        first, path, writing = event
        paths = {path}
        being_written = {path} if writing else set()
        deadline = time.perf_counter() + self.max_burst
        while (left := deadline - time.perf_counter()) > 0:
            quiet = self.debounce if being_written else min(self.debounce, _SETTLE)
            try:
                _, path, writing = self._events.get(timeout=min(quiet, left))
            except queue.Empty:
                break
            paths.add(path)
            if writing:
                being_written.add(path)
            else:  # closed after writing, deleted or moved: this path is settled
                being_written.discard(path)
        return Changes(frozenset(paths), first, settled=not being_written)
