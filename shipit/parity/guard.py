"""A parity check before every submission through one client, at the cost of a few attribute reads.

Every way to submit work through a :class:`distributed.Client` (``submit``, ``map``,
``compute``, ``persist``, ``get`` and so ``dask.compute``) ends in the one method that
sends a graph, ``Client._graph_to_futures``. The guard wraps it on that client instance.

A passing verdict is cached. It goes stale when the scheduler announces a new worker (the
``add-worker`` event on topic ``all``), when shipit ships code (``events.synced``), when a
call such as ``wait_for_workers`` or ``scheduler_info`` shows the client a worker set it has
not checked, and when the scheduler itself was replaced. The next submission then checks
again, synchronously, before anything is sent. A failing verdict is never cached.
"""

from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path
from typing import Any

import distributed
from distributed import Client

from .. import events
from ..config import DEFAULT_TIMEOUT
from ..errors import CannotGuard, UsageError, VersionMismatch
from ..report import ParityReport
from . import check as parity

logger = logging.getLogger(__name__)
_TOPIC = "all"
_guarded: weakref.WeakSet[Client] = weakref.WeakSet()


def guard(client: Client, path: str | Path = ".", *, timeout: float = DEFAULT_TIMEOUT) -> Guard:
    """Refuse to submit work through ``client`` while the cluster's versions differ.

    Use it as a context manager, or call it and keep the handle (``.close()`` to stop).
    A refused submission raises :class:`VersionMismatch` and sends nothing. ``guard`` itself
    checks at once but does not raise on a mismatch: it logs it, and refuses submissions
    until the cluster is fixed (a failing verdict is never cached).

    Example::

        with shipit.guard(client):
            client.submit(simulate, 10).result()
    """
    return Guard(client, path, timeout)


class Guard:
    """The handle of :func:`guard`: ``report`` is the last check, ``checks`` how many ran."""

    def __init__(self, client: Client, path: str | Path, timeout: float) -> None:
        if client.asynchronous:
            raise UsageError("shipit.guard needs a synchronous Client", tip="use shipit.check")
        if client in _guarded:
            raise UsageError("this client already has a shipit guard", tip="close it first")
        if not callable(getattr(client, "_graph_to_futures", None)):  # distributed changed
            raise CannotGuard(f"this distributed ({distributed.__version__}) cannot be guarded")
        self.client = client
        self.timeout = timeout
        self.checks = 0
        self.report: ParityReport | None = None
        self._parity = parity.Parity(path)
        self._lock = threading.Lock()
        self._changes = 0  # bumped by anything that makes the cached verdict stale
        self._checked = -1  # the value of _changes that the cached verdict saw
        self._project_changed = False
        self._closed = False
        self._workers: frozenset[str] = frozenset()
        self._identity = client._scheduler_identity
        self._scheduler_id = self._identity.get("id")
        self._send = client._graph_to_futures
        self._guarded_send = self._guarded  # one bound method, so `is` can recognise it
        self._handler = self._on_event
        self._previous_handler = client._event_handlers.get(_TOPIC)
        _guarded.add(client)
        client._graph_to_futures = self._guarded_send  # type: ignore[method-assign]
        client.subscribe_topic(_TOPIC, self._handler)
        events.after_sync(self)
        try:
            self._refresh()  # warm the cache
        except VersionMismatch as e:
            logger.warning("shipit.guard: submissions are refused until this is fixed\n%s", e)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def invalidate(self, project: bool = False) -> None:
        """Make the next submission check again; ``project`` re-reads the project's code too."""
        self._project_changed = self._project_changed or project
        self._changes += 1

    def close(self) -> None:
        """Stop guarding: submissions go straight through again."""
        if self._closed:
            return
        self._closed = True
        self.invalidate()  # someone may have wrapped us: _guarded then passes straight through
        client = self.client
        if client.__dict__.get("_graph_to_futures") is self._guarded_send:
            del client._graph_to_futures
        if client._event_handlers.get(_TOPIC) is self._handler and client.status == "running":
            if self._previous_handler is not None:
                client.subscribe_topic(_TOPIC, self._previous_handler)
            else:
                client.unsubscribe_topic(_TOPIC)
        _guarded.discard(client)

    def _guarded(self, *args: Any, **kwargs: Any) -> Any:
        # The cost of a submission when nothing changed: three identity comparisons.
        if (
            self._checked != self._changes
            or self.client._scheduler_identity is not self._identity
            or self.client._event_handlers.get(_TOPIC) is not self._handler
        ):
            self._verify()
        return self._send(*args, **kwargs)

    def _verify(self) -> None:
        with self._lock:
            if self._closed:
                return
            client = self.client
            if client._event_handlers.get(_TOPIC) is not self._handler:  # replaced: chain again
                self._previous_handler = client._event_handlers.get(_TOPIC)
                client.subscribe_topic(_TOPIC, self._handler)
                self.invalidate()
            identity = client._scheduler_identity
            if identity is not self._identity:
                if self._sees_other_workers(identity):
                    self.invalidate()
                self._identity = identity
            if self._checked != self._changes:
                self._refresh()

    def _sees_other_workers(self, identity: dict[str, Any]) -> bool:
        """Does this scheduler info show a scheduler or workers the cached verdict did not see?"""
        if identity.get("id") != self._scheduler_id:
            self._scheduler_id = identity.get("id")
            self.client.subscribe_topic(_TOPIC, self._handler)  # a new scheduler: subscribe again
            return True
        workers, count = identity.get("workers") or {}, identity.get("n_workers")
        if workers and count in (None, len(workers)):
            return set(workers) != self._workers
        return count is not None and count != len(self._workers)

    def _refresh(self) -> None:
        """Check now; cache a passing verdict only if nothing changed while checking."""
        for _ in range(5):
            seen = self._changes
            if self._project_changed:
                self._project_changed = False
                self._parity.refresh_project()
            self.report = self._parity.report(self.client, self.timeout)
            self.checks += 1
            if not self.report.ok:
                raise VersionMismatch(self.report)
            self._workers = frozenset(self.report.workers)
            if self._changes == seen:
                self._checked = seen
                return
        # Workers keep joining: this submission passes on the last check, the next checks again.

    def _on_event(self, event: tuple[float, Any]) -> Any:
        """Runs on the client's event loop: only marks the verdict stale, never blocks."""
        message = event[1]
        if isinstance(message, dict):
            if message.get("action") == "add-worker":
                self.invalidate()
            elif message.get("action") == "remove-worker":
                # A worker leaving cannot make a passing cluster fail: forget it, no new check.
                self._workers = self._workers - {message.get("worker")}
        if self._previous_handler is not None:
            return self._previous_handler(event)
        return None
