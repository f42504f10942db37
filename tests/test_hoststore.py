"""The host store: nodes of one host write each shipped file once and link it, on real clusters."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.config
import pytest
from distributed import Client, LocalCluster

import shipit
from tests.helpers import Project


def _module_file(module: str) -> tuple[str, int, Any]:
    import importlib

    mod = importlib.import_module(module)
    return mod.__file__, os.stat(mod.__file__).st_ino, mod.VALUE


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@contextlib.contextmanager
def _cluster(store_dir: Path, workers: int) -> Iterator[Client]:
    """A LocalCluster whose nodes keep their store in ``store_dir``."""
    with (
        dask.config.set({"shipit.directory": str(store_dir)}),
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as lc,
        Client(lc) as client,
    ):
        yield client


@pytest.fixture
def cluster(store_dir: Path) -> Iterator[Client]:
    with _cluster(store_dir, 3) as client:
        yield client


def _home(store_dir: Path) -> Path:
    return store_dir / f"shipit-{os.getuid()}-v2"


def test_workers_of_one_host_share_each_file_once(
    project: Project, cluster: Client, store_dir: Path
) -> None:
    shipit.sync(cluster, project.root, install=False)
    seen = cluster.run(_module_file, f"{project.name}.sub")
    assert [value for _, _, value in seen.values()] == [1, 1, 1]
    inodes = {inode for _, inode, _ in seen.values()}
    assert len(inodes) == 1, "each worker wrote its own copy"
    stored = {p.stat().st_ino for p in (_home(store_dir) / "files").iterdir()}
    assert inodes <= stored

    project.write("{pkg}/sub.py", "VALUE = 2\n")
    shipit.sync(cluster, project.root, install=False)
    seen = cluster.run(_module_file, f"{project.name}.sub")
    assert [value for _, _, value in seen.values()] == [2, 2, 2]
    assert len({inode for _, inode, _ in seen.values()}) == 1

    cluster.cluster.close()  # type: ignore[union-attr]
    home = _home(store_dir)
    assert sorted(p.name for p in home.iterdir() if not p.name.startswith(".")) == [
        "files",
        "nodes",
        "versions",
    ]
    for folder in ("files", "nodes", "versions"):
        assert list((home / folder).iterdir()) == [], folder


def _agent_pid(module: str, dask_worker: Any) -> int | None:
    """This worker's pid once its agent is set up and runs ``module``, else None."""
    store = getattr(dask_worker, "_shipit_store", None)
    if store is None or store.node is None or module.partition(".")[0] not in store.units:
        return None
    return os.getpid()


def test_a_dead_workers_files_are_removed_by_the_next_node(
    project: Project, cluster: Client, store_dir: Path
) -> None:
    shipit.sync(cluster, project.root, install=False)
    nodes = _home(store_dir) / "nodes"
    pids = set(cluster.run(os.getpid).values())
    for pid in pids:  # each node's folder and its lock, none taken by a sibling for dead
        assert sorted(p.name.endswith(".lock") for p in nodes.glob(f"worker-{pid}-*")) == [
            False,
            True,
        ], pid
    pid = next(iter(pids))

    os.kill(pid, signal.SIGKILL)  # no teardown runs: its folder stays behind
    module = f"{project.name}.sub"

    def replaced() -> bool:  # the nanny started a new worker, whose agent is set up
        found = cluster.run(_agent_pid, module, on_error="ignore").values()
        return pid not in found and None not in found and len(found) == 3

    deadline = time.monotonic() + 60
    while not replaced():
        assert time.monotonic() < deadline, "no new worker with a shipit agent within 60 s"
        time.sleep(0.1)
    # The new node, starting once the old one was dead, removed what it left.
    assert list(nodes.glob(f"worker-{pid}-*")) == []
    values = [v for _, _, v in cluster.run(_module_file, module).values()]
    assert values == [1, 1, 1]  # the new worker caught up


def test_a_store_others_could_write_to_is_never_used(
    project: Project, store_dir: Path, tmp_path: Path
) -> None:
    home = _home(store_dir)
    home.mkdir(parents=True)
    home.chmod(0o777)
    with _cluster(store_dir, 1) as client:
        shipit.sync(client, project.root, install=False)
        ((path, _, value),) = client.run(_module_file, f"{project.name}.sub").values()
    assert value == 1
    assert not Path(path).is_relative_to(store_dir)
    assert list(home.iterdir()) == []
