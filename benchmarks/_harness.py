"""What both benchmarks share: a cluster, the edit -> fresh loop, and the table.

"Fresh" means every worker ran a task pinned to it and returned the value just saved.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import itertools
import logging
import os
import queue
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.config
from distributed import Client, LocalCluster, wait
from distributed.diagnostics.plugin import UploadDirectory

import shipit

Render = Callable[[int], str]
_values = itertools.count(1)  # every save writes a value no phase wrote before


def parse_args(description: str | None, edits: int, workers: int = 4) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--edits", type=int, default=edits, help="edits per mechanism")
    parser.add_argument("--workers", type=int, default=workers, help="worker processes")
    return parser.parse_args()


@contextlib.contextmanager
def local_cluster(n_workers: int) -> Iterator[Client]:
    """A fresh cluster per phase: neither mechanism leaves code behind for the other."""
    warnings.filterwarnings("ignore", "Scheduler already contains a plugin", UserWarning)
    warnings.filterwarnings("ignore", "Port .* is already in use", UserWarning)
    with (
        # LocalCluster closes a Nanny for good if its worker is absent when it looks again,
        # lost-worker-timeout (15 s) after a removal: a restart every second or two hits that.
        dask.config.set({"distributed.deploy.lost-worker-timeout": "1h"}),
        # A scratch space of its own: nothing a previous run left on this host is reused.
        tempfile.TemporaryDirectory(prefix="shipit-bench-scratch-") as scratch,
        LocalCluster(
            local_directory=scratch,
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,  # restarts and teardown; CRITICAL still shows
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(n_workers)
        yield client


def import_from(root: Path, module: str) -> Any:
    """Import ``module`` here, as the user's script does, and take ``root`` off sys.path
    again: worker processes spawned later copy this sys.path and would read the disk."""
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(root))


def workers_of(client: Client) -> list[str]:
    return sorted(client.scheduler_info(n_workers=-1)["workers"])


def rounds_until_fresh(
    client: Client, func: Callable[[], Any], want: int, workers: list[str], timeout: float = 60
) -> int:
    """Submit one pinned task per worker and gather, without sleeping, until all return ``want``."""
    deadline = time.perf_counter() + timeout
    rounds = 0
    while (left := deadline - time.perf_counter()) > 0:
        rounds += 1
        futures = [
            client.submit(func, pure=False, workers=[w], allow_other_workers=False) for w in workers
        ]
        wait(futures, timeout=left)  # a pinned task waits forever for a worker that left
        values = client.gather(futures, errors="skip")  # an import mid-switch may fail
        if len(values) == len(workers) and all(v == want for v in values):
            return rounds
    raise TimeoutError(f"workers did not return {want} within {timeout} s")


def count_fresh(client: Client, func: Callable[[], Any], want: int, timeout: float = 60) -> int:
    """How many workers return ``want`` from one pinned task each."""
    workers = workers_of(client)
    futures = [
        client.submit(func, pure=False, workers=[w], allow_other_workers=False) for w in workers
    ]
    wait(futures, timeout=timeout)
    return sum(v == want for v in client.gather(futures, errors="skip"))


@dataclass
class Runs:
    """Per-edit measurements of one mechanism, in milliseconds."""

    edit_ms: list[float] = field(default_factory=list)  # edit -> fresh, unless not polled
    event_ms: list[float] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    bytes_sent: list[int] = field(default_factory=list)
    idle_round_ms: list[float] = field(default_factory=list)
    fresh_workers: int | None = None  # after the last save, when not polled


def watch_edits(
    client: Client, root: Path, probe: Path, func: Callable[[], Any], render: Render, edits: int
) -> Runs:
    """Edit ``probe`` under ``shipit.watch`` and time each save until every worker is fresh."""
    events: queue.SimpleQueue[shipit.WatchEvent] = queue.SimpleQueue()
    runs = Runs()
    handle = shipit.watch(client, root, on_event=events.put)
    try:
        workers = workers_of(client)
        for _ in range(20):  # the poll's own cost, with nothing to wait for
            t0 = time.perf_counter()
            rounds_until_fresh(client, func, 0, workers)
            runs.idle_round_ms.append((time.perf_counter() - t0) * 1000)
        for value in itertools.islice(_values, edits):
            time.sleep(0.2)  # separate bursts
            while not events.empty():
                events.get()
            t0 = time.perf_counter()
            probe.write_text(render(value))
            runs.rounds.append(rounds_until_fresh(client, func, value, workers))
            runs.edit_ms.append((time.perf_counter() - t0) * 1000)
            event = events.get(timeout=30)
            while event.kind != "shipped":
                event = events.get(timeout=30)
            assert event.report is not None and event.latency_ms is not None
            runs.event_ms.append(event.latency_ms)
            runs.bytes_sent.append(sum(u.bytes_sent for u in event.report.units))
    finally:
        handle.stop()
    return runs


def upload_edits(
    client: Client,
    probe: Path,
    func: Callable[[], Any],
    render: Render,
    edits: int,
    upload: Callable[[], object],
    *,
    poll: bool = True,
) -> Runs:
    """Per save: write ``probe``, call ``upload()``, then with ``poll`` wait until every worker
    is fresh. Without ``poll`` time edit -> upload returned, and count the fresh workers once."""
    runs = Runs()
    value = 0
    for value in itertools.islice(_values, edits):
        time.sleep(0.2)
        t0 = time.perf_counter()
        probe.write_text(render(value))
        upload()
        if poll:  # restarted workers listen on new addresses
            runs.rounds.append(rounds_until_fresh(client, func, value, workers_of(client)))
        runs.edit_ms.append((time.perf_counter() - t0) * 1000)
    if not poll:
        runs.fresh_workers = count_fresh(client, func, value)
    return runs


def after_upload_directory(root: Path) -> list[str]:
    """Notes on UploadDirectory from distributed's source and this process; then remove the
    folders it extracted (it never does) and take them off this process's sys.path."""
    notes = [
        "a restart per save trips LocalCluster's lost-worker check: without "
        "distributed.deploy.lost-worker-timeout=1h (set here) Nannies are closed for good "
        "within ~10 edits and the cluster hangs; every restart also drops worker memory"
    ]
    if "self.update_graph" in inspect.getsource(UploadDirectory.start):
        notes.append(
            "UploadDirectory.start passes self.update_graph (a bound method, always truthy) "
            "as update_path on its scheduler branch; the default mode='workers' skips that "
            "branch, so the scheduler never gets the code"
        )
    extracted = [p for p in sys.path if Path(p).name == root.name and Path(p) != root]
    if extracted:
        notes.append(
            f"the Nanny extracts and edits sys.path: in a LocalCluster the Nannies live in this "
            f"client process, whose sys.path gained {', '.join(extracted)}, shared by every "
            f"Nanny and kept after the cluster closed. A worker sees it only once restarted "
            f"(spawned with the Nanny's sys.path); extractall never deletes a removed module"
        )
    for path in extracted:
        sys.path.remove(path)
        shutil.rmtree(path, ignore_errors=True)
    return notes


def ms(values: list[float]) -> str:
    """Median and p90 (nearest rank) in ms."""
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):9.1f} ms {p90:9.1f} ms"


def header(title: str) -> None:
    print(f"\n{title}")
    print(f"{'':46}{'median':>12}{'p90':>12}  n  rounds")


def row(label: str, values: list[float], rounds: list[int] | None = None, tail: str = "") -> None:
    counted = f"{statistics.median(rounds):<6g}" if rounds else " " * 6
    print(f"  {label:<44}{ms(values)}  {len(values):<3}{counted}{tail}".rstrip())


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load avg {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"
