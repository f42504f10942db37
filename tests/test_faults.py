"""Faults, with real processes: a worker killed mid-sync, concurrent syncs, a burst of edits."""

from __future__ import annotations

import hashlib
import importlib
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
from distributed import Client

import shipit
from shipit.project.pack import file_digest, unit_digest
from shipit.shipper import Shipper

from .helpers import Cluster, ProcessCluster, Project

# Every test here starts a cluster or a shipit process.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]
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
    for name, unit in list(store.units.items()):  # a copy: a switch may be under way
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


def _value_source(value: object) -> str:
    return f"VALUE = {value!r}\n\ndef value():\n    return VALUE\n"


def _set_value(project: Project, value: object, module: str = "sub") -> None:
    project.write(f"{{pkg}}/{module}.py", _value_source(value))


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


class Tasks:
    """Runs tasks on every worker, over and over, until stopped; keeps what they returned."""

    def __init__(self, cluster: Cluster, func: Callable[[], Any]) -> None:
        self.cluster, self.func = cluster, func
        self.results: list[Any] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.results += self.cluster.on_every_worker(self.func, per_worker=2)
            except BaseException as e:  # what a task raised reaches the client here
                self.errors.append(e)

    def __enter__(self) -> Tasks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def _cluster_state(client: Any) -> list[dict[str, Any]]:
    return [client.run_on_scheduler(_node_digests), *client.run(_node_digests).values()]


def test_two_concurrent_syncs_end_on_one_version_and_tasks_never_fail(
    process_cluster: Cluster, project: Project, tmp_path: Path
) -> None:
    client = process_cluster.client
    shipit.sync(client, project.root, install=False)
    value = project.module("{pkg}.sub").value
    with Tasks(process_cluster, value) as tasks:
        # One checkout, two syncs at the same moment: both succeed, the cluster holds it.
        _set_value(project, 10)
        runs = [_shipit_sync(project, process_cluster.scheduler_address) for _ in range(2)]
        for run in runs:
            out, err = run.communicate(timeout=60)
            assert run.returncode == 0, out + err
        assert all(s == _local_state(project) for s in _cluster_state(client))

        # Two checkouts of one package, each with its own edit, synced at the same moment:
        # every node ends on the same one of the two.
        other = Project(tmp_path / "clone", project.name)
        subprocess.run(["cp", "-r", str(project.root), str(other.root)], check=True)
        _set_value(project, 11)
        _set_value(other, 12)
        runs = [_shipit_sync(p, process_cluster.scheduler_address) for p in (project, other)]
        for run in runs:
            out, err = run.communicate(timeout=60)
            assert run.returncode == 0, out + err
        states = _cluster_state(client)
        digests = {s[project.name]["digest"] for s in states}
        assert len(digests) == 1 and states[0] in (_local_state(project), _local_state(other))
        final = 11 if states[0] == _local_state(project) else 12
        assert process_cluster.on_every_worker(value) == [final] * 8
        seen = len(tasks.results)
        _wait_until(lambda: len(tasks.results) > seen + 8, 30, "tasks after the last sync")

    assert tasks.errors == []
    assert set(tasks.results) <= {1, 10, 11, 12} and tasks.results[-1] == final


def test_a_burst_of_200_edits_ends_with_every_node_on_the_final_state(
    process_cluster: Cluster, project: Project
) -> None:
    client = process_cluster.client
    modules = [f"m{i}" for i in range(5)]
    for name in modules:
        _set_value(project, 0, name)
    seen: list[shipit.WatchEvent] = []
    with shipit.watch(client, project.root, on_event=seen.append):
        start = time.monotonic()
        for i in range(200):  # 200 edits over 2 s: rewrites, new files and deletions
            if i % 20 == 7:
                _set_value(project, i, f"extra{i % 3}")
            elif i % 20 == 17 and (project.root / project.name / f"extra{i % 3}.py").exists():
                project.remove(f"{{pkg}}/extra{i % 3}.py")
            else:
                _set_value(project, i, modules[i % len(modules)])
            time.sleep(max(0.0, start + (i + 1) * 0.01 - time.monotonic()))
        wrote = time.monotonic() - start
        final = _local_state(project)
        _wait_until(lambda: all(s == final for s in _cluster_state(client)), 30, "the final state")
        settled = time.monotonic() - start - wrote

    assert 1.9 < wrote < 5.0  # the writer keeps to its schedule, give or take a loaded machine
    assert all(s == final for s in _cluster_state(client))
    assert not [e for e in seen if e.kind in ("failed", "error", "syntax-error")], seen
    probe = project.module("{pkg}.probe")
    for name in [*modules, "extra0", "extra1", "extra2"]:
        path = project.root / project.name / f"{name}.py"
        dotted = f"{project.name}.{name}"
        if path.exists():
            expected = int(path.read_text().split("\n")[0].split("= ")[1])
            assert process_cluster.on_every_worker(probe.read, dotted) == [expected] * 8
        else:
            results = client.run(importlib.import_module, dotted, on_error="return")
            assert all(isinstance(r, ModuleNotFoundError) for r in results.values()), results
    assert settled < 10


def test_the_scheduler_killed_during_a_sync_is_one_line_and_exit_2(
    tmp_path: Path, bare_python: Path, project: Project
) -> None:
    pc = ProcessCluster(bare_python, tmp_path)
    worker_pid = None
    try:
        address = pc.start_scheduler()
        pc.start_worker()
        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
            shipit.sync(client, project.root, install=False)
            (worker_pid,) = client.run(os.getpid).values()
            os.kill(worker_pid, signal.SIGSTOP)  # the push will wait on this worker
            _set_value(project, 2)
            new = _local_state(project)[project.name]["digest"]
            sync = _shipit_sync(project, address)
            _wait_until(
                lambda: client.run_on_scheduler(_node_digests)[project.name]["digest"] == new,
                60,
                "the scheduler to take the new code",
            )
            assert sync.poll() is None
            pc.procs[0].kill()  # the scheduler dies in the middle of the sync
            out, err = sync.communicate(timeout=60)
    finally:
        if worker_pid is not None:
            os.kill(worker_pid, signal.SIGKILL)
        pc.close()

    assert sync.returncode == 2, out + err
    assert "Traceback" not in err
    assert err.splitlines()[0] == (
        f"ERROR lost the connection to the scheduler at {address}: Stream is closed"
    ), err
    assert err.splitlines()[1].startswith("TIP") and "scheduler still running?" in err, err
    assert len(err.splitlines()) == 2, err


def test_a_frozen_worker_is_named_after_the_timeout_and_the_next_sync_catches_it_up(
    process_cluster: Cluster, project: Project
) -> None:
    client = process_cluster.client
    shipit.sync(client, project.root, install=False)
    value = project.module("{pkg}.sub").value
    pids = client.run(os.getpid)
    frozen = sorted(pids)[0]
    os.kill(pids[frozen], signal.SIGSTOP)  # alive, connected, answering nothing
    try:
        _set_value(project, 2)
        started = time.monotonic()
        report = Shipper(client, project.root, timeout=3).push(shipit.plan(project.root).packs)
        took = time.monotonic() - started
    finally:
        os.kill(pids[frozen], signal.SIGCONT)

    assert took < 10
    assert report.failures == {
        frozen: "the worker did not answer within 3 s; the next sync brings it up to date"
    }
    assert report.confirmed == 2  # the scheduler and the other worker
    report = shipit.sync(client, project.root, install=False)  # nothing changed locally
    assert report.ok and report.shipped == ()
    assert process_cluster.on_every_worker(value) == [2] * 8


def test_the_same_sync_again_repairs_a_node_that_failed(
    process_cluster: Cluster, project: Project
) -> None:
    client, address = process_cluster.client, process_cluster.scheduler_address
    shipit.sync(client, project.root, install=False)
    value = project.module("{pkg}.sub").value
    victim = process_cluster.workers[0]
    _set_value(project, 2)
    digest = _local_state(project)[project.name]["digest"]

    def stray(path: str, dask_worker: Any, remove: bool = False) -> None:
        # A folder where this node's pin of the new version must go: a real failure on
        # one node (the version itself is built once per host, for every node there).
        target = os.path.join(dask_worker._shipit_store.node.path, path)
        os.rmdir(target) if remove else os.mkdir(target)

    client.run(stray, f"{project.name}-{digest[:16]}", workers=[victim])
    out, err = _shipit_sync(project, address).communicate(timeout=60)
    assert f"failed     {victim}: IsADirectoryError" in err

    client.run(stray, f"{project.name}-{digest[:16]}", remove=True, workers=[victim])
    run = _shipit_sync(project, address)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, out + err
    assert "nothing changed; 1/1 lagging node(s) brought up to date" in out
    assert process_cluster.on_every_worker(value) == [2] * 8
    out, _ = _shipit_sync(project, address).communicate(timeout=60)
    assert "nothing changed; no code sent" in out  # and then it is no longer lagging


def test_watch_retries_a_node_a_push_failed_on_until_it_takes_the_code(
    process_cluster: Cluster, project: Project
) -> None:
    client = process_cluster.client
    value = project.module("{pkg}.sub").value
    victim = process_cluster.workers[0]
    seen: list[shipit.WatchEvent] = []

    def stray(path: str, dask_worker: Any, remove: bool = False) -> None:
        # A folder where this node's pin of the new version must go: a real failure on
        # one node (the version itself is built once per host, for every node there).
        target = os.path.join(dask_worker._shipit_store.node.path, path)
        os.rmdir(target) if remove else os.mkdir(target)

    def kinds() -> list[str]:
        return [e.kind for e in seen]

    with shipit.watch(client, project.root, on_event=seen.append):
        # Where the next version's folder will go, computed before it is saved.
        manifest = {**_local_state(project)[project.name]["files"]}
        manifest[f"{project.name}/sub.py"] = file_digest(_value_source(2).encode())
        folder = f"{project.name}-{unit_digest(project.name, manifest)[:16]}"
        client.run(stray, folder, workers=[victim])
        _set_value(project, 2)
        _wait_until(lambda: "failed" in kinds(), 30, "the push to fail on one worker")
        assert list(seen[-1].report.failures) == [victim]  # type: ignore[union-attr]
        client.run(stray, folder, remove=True, workers=[victim])  # the problem goes away
        _wait_until(lambda: "caught-up" in kinds(), 30, "watch to retry the worker")

    assert str(seen[kinds().index("caught-up")]) == (
        "caught-up  1 lagging node(s) now run the current code"
    )
    assert process_cluster.on_every_worker(value) == [2] * 8
