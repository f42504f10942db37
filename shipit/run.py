"""Run a script against the cluster, after the checks a long run deserves.

Sync the project (code, then what the nodes lack), check parity, then run the script with
the same Python and ``DASK_SCHEDULER_ADDRESS`` set, so that a plain ``Client()`` in it
connects. Without a scheduler, a local cluster lives for the run.

Example::

    shipit.run("train.py", ["--epochs", "3"], "tcp://10.0.0.5:8786").returncode
    # 0
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from distributed import Client

from .config import DEFAULT_TIMEOUT, Options, load_config
from .connection import connect, scheduler_address
from .errors import NoSchedulerError, UsageError
from .local_cluster import EmbeddedCluster
from .parity.check import Parity
from .project.plan import plan_of
from .report import ParityReport, SyncReport
from .sync import ship_and_install


@dataclass(frozen=True)
class RunReport:
    """What happened: ``returncode`` is the script's, None when the checks refused the run."""

    scheduler: str
    sync: SyncReport
    parity: ParityReport | None
    returncode: int | None = None
    cluster: str | None = None  # how the embedded cluster was started, when there was one

    @property
    def refused(self) -> bool:
        return self.returncode is None

    @property
    def ready(self) -> bool:
        """The code is on every node and the versions are in parity: the script may run."""
        return self.sync.ok and self.parity is not None and self.parity.ok


def run(
    script: str | Path,
    args: Sequence[str] = (),
    client: Client | str | None = None,
    path: str | Path = ".",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    n_workers: int | None = None,
    install: bool = True,
    on_progress: Callable[[str], None] = lambda step: None,
    on_ready: Callable[[RunReport], None] = lambda report: None,
) -> RunReport:
    """Sync the project at ``path``, check parity, and run ``script`` with ``args``.

    ``client`` is a Client, an address, or None: then DASK_SCHEDULER_ADDRESS, else a local
    cluster started for the run (``n_workers``) and closed after it. The script runs with
    this Python, in the current directory, with DASK_SCHEDULER_ADDRESS set; SIGINT and
    SIGTERM reach it. When a unit does not compile, a node fails, or parity fails, it does
    not run: ``report.refused``. ``on_ready`` hears the report just before the script starts.

    Example::

        report = shipit.run("search.py", ["--trials", "200"])
        report.returncode, report.sync.ok, report.parity.ok
        # (0, True, True)
    """
    script = Path(script)
    if not script.is_file():
        raise UsageError(f"no script at {script}", tip="give the path of a Python file to run")
    # What ships is decided before anything starts: a project that cannot ship fails at once.
    on_progress("finding, hashing and compiling the project's files")
    config = load_config(path)
    options = Options.resolve(config, timeout=timeout, install=install)
    the_plan = plan_of(config)
    with _cluster(client, timeout, n_workers, on_progress) as (connected, started):
        address = str(connected.scheduler.address)
        on_progress("connecting to the scheduler")
        with connect(connected, timeout):  # a lost scheduler is a ConnectionLost
            the_sync, the_plan = ship_and_install(
                connected, the_plan, options, install=install, on_progress=on_progress
            )
            the_parity = None
            if the_sync.ok:
                on_progress("checking versions on every node")
                the_parity = Parity(plan=the_plan).report(connected, timeout)
        report = RunReport(address, the_sync, the_parity, cluster=started)
        if not report.ready:
            return report
        on_ready(report)
        env = {**os.environ, "DASK_SCHEDULER_ADDRESS": address}
        code = run_process([sys.executable, str(script), *args], env)
        return RunReport(address, the_sync, the_parity, returncode=code, cluster=started)


@contextlib.contextmanager
def _cluster(
    client: Client | str | None,
    timeout: float,
    n_workers: int | None,
    on_progress: Callable[[str], None],
) -> Iterator[tuple[Client, str | None]]:
    """The given cluster, or a local one for the run."""
    if not isinstance(client, Client):
        try:
            client = scheduler_address(client)
        except NoSchedulerError:
            on_progress("starting a local cluster")
            embedded = EmbeddedCluster(n_workers)
            try:
                yield embedded.client, embedded.description
            finally:
                on_progress("closing the local cluster")
                embedded.close()
            return
    with connect(client, timeout) as connected:
        yield connected, None


def run_process(command: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Run ``command``, handing it SIGINT and SIGTERM; its exit code (128 + N if signal N
    ended it, as shells say).

    A Ctrl-C on the terminal already reaches the child (same foreground process group), so
    SIGINT is forwarded only when it cannot have come from there.
    """
    child: subprocess.Popen[bytes] | None = None

    early: list[int] = []  # signals from before the child existed, handed to it once it does

    def forward(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT and _terminal_delivers_sigint():
            return
        if child is None:
            early.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Handlers before the child starts: it then starts with the default dispositions,
        # even where this process inherited SIGINT ignored (a shell script's background job).
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, forward)
    try:
        child = subprocess.Popen(list(command), env=env)
        for early_signal in early:
            forward(early_signal, None)
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def _terminal_delivers_sigint() -> bool:
    """True when this process is in the foreground of a terminal: Ctrl-C signals us all."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)
