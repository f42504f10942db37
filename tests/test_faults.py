"""Faults, with real processes: a worker killed mid-sync, concurrent syncs, a burst of edits."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import shipit

from .conftest import Cluster, Project

pytestmark = pytest.mark.timeout(180)
# Nodes run these helpers without this test package: send them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _shipit_sync(project: Project, address: str, *args: str) -> subprocess.Popen[str]:
    """``shipit sync`` as the user runs it: its own process, from the project folder."""
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    return subprocess.Popen(
        [sys.executable, "-m", "shipit", "sync", "--scheduler", address, "--no-install", *args],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _node_digests(dask_worker: Any = None, dask_scheduler: Any = None) -> dict[str, Any]:
    """What a node holds: each unit's digest, and the sha256 of every file in its folder."""
    import hashlib as _hashlib
    import os as _os

    plugin = dask_scheduler.plugins["shipit"] if dask_scheduler is not None else None
    store = plugin.store if plugin is not None else dask_worker._shipit_store
    found: dict[str, Any] = {}
    for name, unit in store.units.items():
        files = {}
        for folder, _, names in _os.walk(unit["path"]):
            for file in names:
                path = _os.path.join(folder, file)
                rel = _os.path.relpath(path, unit["path"]).replace(_os.sep, "/")
                if "__pycache__" not in rel:
                    with open(path, "rb") as f:
                        files[rel] = _hashlib.sha256(f.read()).hexdigest()
        found[name] = {"digest": unit["digest"], "files": files}
    return found


def _local_state(project: Project) -> dict[str, Any]:
    """What every node must hold: the same, computed from the local files."""
    state = {}
    for pack in shipit.plan(project.root).packs:
        files = {
            rel: hashlib.sha256((pack.root / rel).read_bytes()).hexdigest() for rel in pack.files
        }
        state[pack.name] = {"digest": pack.digest, "files": files}
    return state


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _set_value(project: Project, value: object, module: str = "sub") -> None:
    project.write(f"{{pkg}}/{module}.py", f"VALUE = {value!r}\n\ndef value():\n    return VALUE\n")


def test_a_worker_killed_during_a_sync_is_named_and_its_replacement_runs_current_code(
    process_cluster: Cluster, project: Project
) -> None:
    client = process_cluster.client
    shipit.sync(client, project.root, install=False)
    value = project.module("{pkg}.sub").value
    pids = client.run(os.getpid)
    victim, survivor = sorted(pids)
    # The victim stops answering; the sync waits on it while the survivor takes the code.
    os.kill(pids[victim], signal.SIGSTOP)
    try:
        _set_value(project, 2)
        new = _local_state(project)[project.name]["digest"]
        sync = _shipit_sync(project, process_cluster.scheduler_address)

        def survivor_has_it() -> bool:
            held = client.run(_node_digests, workers=[survivor])[survivor]
            return held[project.name]["digest"] == new

        _wait_until(survivor_has_it, 60, "the surviving worker to take the new code")
        assert sync.poll() is None  # still waiting on the stopped worker
    finally:
        os.kill(pids[victim], signal.SIGKILL)  # killed in the middle of the sync
    out, err = sync.communicate(timeout=60)

    assert sync.returncode == 1, out + err
    assert "Traceback" not in err
    (failed,) = [line for line in err.splitlines() if line.startswith("failed")]
    assert victim in failed and "went away during the sync" in failed, err
    assert f"shipped    {project.name}" in out and "2/3 nodes" in out, out
    # Its nanny starts a replacement, which catches up with the current code on its own.
    _wait_until(
        lambda: len(process_cluster.workers) == 2 and victim not in process_cluster.workers,
        60,
        "the nanny to replace the killed worker",
    )
    assert process_cluster.on_every_worker(value) == [2] * 8
    held = client.run(_node_digests)
    assert all(h == _local_state(project) for h in held.values()), held
