"""The dev loop: every saved change reaches every node, in a background thread.

Example::

    handle = shipit.watch(client)      # in a notebook
    handle.stop()
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from distributed import Client

from . import kernel
from .config import DEFAULT_TIMEOUT, Options, PipOverrides, load_config
from .connection import open_client, scheduler_address
from .errors import ConnectionFailed, NoSchedulerError, ShipitError, StaleFile
from .install.live import LiveInstalls
from .local_cluster import EmbeddedCluster
from .project.discover import Project, Unit
from .project.limits import check_compiled, check_sizes
from .project.pack import Packer
from .project.plan import Plan, packed_plan
from .report import EventKind, SyntaxProblem, WatchEvent
from .shipper import AGENT, Shipper
from .watcher import Changes, ChangeWatcher

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)

_CONFIG_FILES = ("pyproject.toml", ".gitignore")
_RECONNECT_EVERY = 2.0  # seconds between attempts once backed off
_RETRY_FIRST, _RETRY_MAX = 2.0, 60.0  # seconds before retrying nodes a push failed on


def _print_event(event: WatchEvent) -> None:  # outside a notebook: a log line
    logger.info("%s", event)


class Watch:
    """A running watch over one project. Use as a context manager, or call :meth:`stop`."""

    def __init__(
        self,
        client: Client | str | None = None,
        path: str | Path = ".",
        *,
        on_event: Callable[[WatchEvent], None] = _print_event,
        debounce: float = 0.01,
        timeout: float = DEFAULT_TIMEOUT,
        n_workers: int | None = None,
        on_progress: Callable[[str], None] = lambda step: None,
        install: bool = True,
        restart: bool = False,
        **pip: Unpack[PipOverrides],
    ) -> None:
        self.config = load_config(path)  # read again only when pyproject.toml changes
        Options.resolve(self.config, timeout=timeout, **pip)  # a bad pip option fails now
        self._installs = LiveInstalls(
            (lambda plan: Options.resolve(plan.config, timeout=timeout, **pip))
            if install
            else None,
            lambda kind, line: self._emit(WatchEvent(kind, line)),  # type: ignore[arg-type]
            restart=restart,
        )
        self.root = self.config.root
        self.project = Project(self.config)  # a folder that cannot ship fails before connecting
        self.on_progress = on_progress  # hears the steps of the start, until ready
        self.on_event = on_event
        self.debounce = debounce
        self.timeout = timeout
        self.n_workers = n_workers
        self._given = client
        self._client: Client | None = client if isinstance(client, Client) else None
        self._cluster: EmbeddedCluster | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="shipit-watch", daemon=True)
        self._problems: frozenset[str] = frozenset()
        self._known: set[str] | None = None  # every file of the last discovery
        self._cached_units: list[Unit] = []
        self._retry_at: float | None = None  # when to try again the nodes a push failed on
        self._unsettled: set[str] = set()  # files that kept changing while they were packed
        self._retry_delay = _RETRY_FIRST

    # -- the handle -------------------------------------------------------------------

    def start(self) -> Watch:
        """Start; return once the first sync is done (or failed), or :meth:`stop` was called."""
        self._thread.start()
        while not self._ready.wait(0.1) and not self._stop.is_set():
            pass
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 30) -> bool:
        """Stop watching; close what this watch started (its client, its local cluster).
        Waits up to ``timeout`` seconds for that (0: not at all); True once it ended."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called, or the watch ended by itself."""
        return self._stop.is_set() or not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the watch ends (True), or ``timeout`` seconds; raise what ended it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive():
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                return False
            self._thread.join(left)
        if self._error is not None:
            raise self._error
        return True

    @property
    def client(self) -> Client | None:
        return self._client

    def __repr__(self) -> str:
        return f"<shipit.Watch {self.root}: {'stopped' if self.stopping else 'watching'}>"

    def __enter__(self) -> Watch:
        return self.start() if not self._thread.is_alive() else self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._open()
            self.packer = Packer()
            # Watch before the first sync, so that nothing saved during it is missed.
            with ChangeWatcher(
                self.project.watch_roots, self._accepts, debounce=self.debounce, stop=self._stop
            ) as changes:
                self._watcher = changes
                self._ship(Changes(frozenset()), kind="ready")
                self._ready.set()
                for batch in changes:
                    if batch:
                        self._ship(batch)
                    else:
                        self._look_after_connection()
        except BaseException as e:  # handed to whoever waits on the handle
            self._error = e
        finally:
            self._ready.set()
            self._close()
            self._emit(WatchEvent("stopped"))

    def _load_project(self) -> Project:
        self.config = load_config(self.root)
        return Project(self.config)

    def _accepts(self, path: str) -> bool:
        name = os.path.basename(path)
        return name in _CONFIG_FILES or self.project.unit_name_for(path) is not None

    def _ship(self, batch: Changes, kind: EventKind = "shipped") -> None:
        try:
            self._ship_once(batch, kind)
        except ShipitError as e:  # a bad pyproject.toml, two units of one name: say, go on
            self._emit(WatchEvent("error", str(e)))

    def _ship_once(self, batch: Changes, kind: EventKind) -> None:
        names = {os.path.basename(p) for p in batch.paths}
        if "pyproject.toml" in names:
            self.project = self._load_project()
        elif ".gitignore" in names:
            self.project.reload_ignores()
        changed = {Path(p) for p in batch.paths}
        for path in changed:  # read again, whatever the packer knew
            self.packer.forget(path)
        for _ in range(3):
            if kind == "ready":
                self.on_progress("finding, hashing and compiling the project's files")
            units, only_known_files = self._units(batch, names)
            try:
                # Paths the watcher named, matched against the walk's own: only then may the
                # packer take every other file as unchanged.
                packs, problems = self.packer.pack(
                    units,
                    changed if only_known_files else None,
                    None if batch.retry else self._watcher,
                )
                check_sizes(packs, self.config)  # too large: an error event, nothing sent
                check_compiled(packs, self.config)
                self._report_problems(problems)
                if kind == "shipped" and self.shipper.is_current(packs, problems):
                    return  # saved without a change of content: nothing to send
                if kind == "ready":
                    files = sum(len(p.manifest) for p in packs)
                    self.on_progress(
                        f"shipping {len(packs)} unit(s), {files:,} files, to every node"
                    )
                report = self.shipper.push(packs, problems)
                the_plan = packed_plan(self.config, self.packer, units, packs, problems)
                break
            except StaleFile:
                continue
            except (OSError, TimeoutError) as e:
                self._reconnect(str(e))
                return
        else:
            # Still being written: ship these files on a quiet tick, once they hold still.
            self._unsettled.update(batch.paths)
            return
        latency = (time.perf_counter() - batch.first_event) * 1000 if batch else None
        self._schedule_retry(failed=bool(report.failures))
        self._after_push(the_plan, again=kind == "ready")
        if report.failures:
            self._emit(WatchEvent("failed", report=report, latency_ms=latency))
        elif kind == "caught-up":
            if report.nodes:
                n = len(report.nodes)
                self._emit(WatchEvent(kind, f"{n} lagging node(s) now run the current code"))
        elif report.shipped or any(u.status == "removed" for u in report.units) or kind == "ready":
            self._emit(WatchEvent(kind, report=report, latency_ms=latency))

    def _after_push(self, the_plan: Plan, again: bool) -> None:
        """What the pushed code needs, installed in the background when that changed."""
        if again:
            kernel.look(the_plan.units)  # what this process has loaded of them, from now on
        if self._client is not None and not the_plan.problems:
            self._installs.after_push(self._client, the_plan, again=again)

    def _schedule_retry(self, failed: bool) -> None:
        """After a push some nodes failed, try them again on a quiet tick, backing off;
        the scheduler then brings them to the current version (nothing else is sent)."""
        if not failed:
            self._retry_at, self._retry_delay = None, _RETRY_FIRST
        else:
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)

    def _units(self, batch: Changes, names: set[str]) -> tuple[list[Unit], bool]:
        """The project's units, walked again unless the burst only rewrote known files (True)."""
        known = self._known
        if (
            known is not None
            and batch
            and not names & set(_CONFIG_FILES)
            and all(p in known and os.path.isfile(p) for p in batch.paths)
        ):
            return self._cached_units, True
        units = self.project.units()
        self._known = {str(u.root / rel) for u in units for rel in u.files}
        self._cached_units = units
        return units, False

    def _report_problems(self, problems: list[SyntaxProblem]) -> None:
        seen = frozenset(str(p) for p in problems)
        if seen and seen != self._problems:
            self._emit(WatchEvent("syntax-error", problems=tuple(problems)))
        self._problems = seen

    def _emit(self, event: WatchEvent) -> None:
        try:
            self.on_event(event)
        except Exception:
            logger.exception("the watch event handler failed on %s", event)

    # -- the connection ---------------------------------------------------------------

    def _open(self) -> None:
        if self._client is None:
            given = self._given if isinstance(self._given, str) else None
            try:
                address: str | None = scheduler_address(given)
            except NoSchedulerError:
                address = None
            if address is None:
                self.on_progress("starting a local cluster")
                self._start_local_cluster()
            else:
                self.on_progress(f"connecting to {address}")
                self._client = open_client(address, self.timeout)
        assert self._client is not None
        self.shipper = Shipper(self._client, self.root)

    def _start_local_cluster(self) -> None:
        self._cluster = EmbeddedCluster(self.n_workers)
        self._client = self._cluster.client
        self._emit(WatchEvent("cluster", self._cluster.description))

    def _look_after_connection(self) -> None:
        """On a quiet tick: is the scheduler still there, and does it still run our agent?"""
        if self._client is not None and self._client.status == "connecting":
            self._reconnect("the connection broke")  # Dask's client lost it: say so at once
            return
        try:
            state = self.shipper.agent_state()
        except (OSError, TimeoutError) as e:
            self._reconnect(str(e))
            return
        for kind, line in self._installs.joined(state or {}):
            self._emit(WatchEvent(kind, line))  # type: ignore[arg-type]
        if state is None or (state["agent"], state["epoch"]) != (AGENT, self.shipper.epoch):
            # A new scheduler, or another agent: give it everything.
            self.shipper.remote = None
            self._ship(Changes(frozenset()), kind="ready")
        elif self._unsettled:
            batch = Changes(frozenset(self._unsettled), time.perf_counter(), retry=True)
            self._unsettled.clear()
            self._ship(batch)
        elif self._retry_at is not None and time.monotonic() >= self._retry_at:
            self._ship(Changes(frozenset()), kind="caught-up")

    def _reconnect(self, why: str) -> None:
        self._emit(WatchEvent("disconnected", f"lost the scheduler ({why}); reconnecting"))
        address = self.shipper.client.scheduler.address
        owned = not isinstance(self._given, Client)
        delay = 0.5
        while not self._stop.is_set():
            try:
                if owned:
                    with contextlib.suppress(Exception):
                        self.shipper.client.close(timeout=2)
                    self._client = open_client(address, self.timeout)
                self.shipper = Shipper(self._client, self.root)  # type: ignore[arg-type]
                self.shipper.install_agent()
                break
            except (OSError, TimeoutError, ConnectionFailed) as e:
                logger.debug("reconnect failed: %s", e)
                self._stop.wait(delay)
                # An attempt is one connect: trying every 2 s keeps the gap short once it is back.
                delay = min(delay * 2, _RECONNECT_EVERY)
        else:
            return
        self._emit(WatchEvent("reconnected", f"to {address}"))
        self._ship(Changes(frozenset()), kind="ready")

    def _close(self) -> None:
        self._installs.stop()
        if self._client is not None and not isinstance(self._given, Client):
            with contextlib.suppress(Exception):
                self._client.close(timeout=5)
        if self._cluster is not None:
            self._cluster.close()


def watch(
    client: Client | str | None = None,
    path: str | Path = ".",
    *,
    on_event: Callable[[WatchEvent], None] | None = None,
    debounce: float = 0.01,
    n_workers: int | None = None,
    install: bool = True,
    restart: bool = False,
    **pip: Unpack[PipOverrides],
) -> Watch:
    """Watch the project at ``path`` in the background and ship every change.

    ``client`` is a Client, a scheduler address, or None: then DASK_SCHEDULER_ADDRESS, or
    else a local cluster that the watch starts and closes. Returns once the first sync is
    done; ``.stop()`` ends it. Unless ``install`` is off, what the shipped code needs is
    installed where nodes lack it, as :func:`shipit.sync` does (the pip settings likewise),
    in the background whenever that changes; ``restart`` restarts workers a replaced
    package is loaded in.

    Example::

        handle = shipit.watch(client, on_event=print)
        handle.stop()
    """
    if on_event is None:  # in a notebook, one status area; elsewhere, log lines
        from .display import StatusArea, in_a_kernel

        on_event = StatusArea(Path(path).resolve()) if in_a_kernel() else _print_event
    return Watch(
        client, path, on_event=on_event, debounce=debounce, n_workers=n_workers,
        install=install, restart=restart, **pip,
    ).start()  # fmt: skip
