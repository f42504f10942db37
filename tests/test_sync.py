"""shipit.sync against real clusters: LocalCluster(processes=True) and dask scheduler/worker."""

from __future__ import annotations

import importlib

import dask.bag
import pytest
from distributed import futures_of, wait

import shipit
from shipit.report import SyncReport

from .helpers import Cluster, Project

pytestmark = pytest.mark.cluster  # every test here starts a cluster or a shipit process


def _sync(cluster: Cluster, project: Project) -> SyncReport:
    report = shipit.sync(cluster.client, project.root)
    assert report.ok, report
    return report


def test_edited_submodule_runs_on_every_worker(cluster: Cluster, project: Project) -> None:
    _sync(cluster, project)
    sub = project.module("{pkg}.sub")
    assert cluster.on_every_worker(sub.value) == [1] * 8

    project.write("{pkg}/sub.py", "VALUE = 2\n\ndef value():\n    return VALUE\n")
    report = _sync(cluster, project)

    assert [u.name for u in report.shipped] == [project.name]
    assert report.confirmed == len(cluster.workers) + 1  # every worker and the scheduler
    assert cluster.on_every_worker(sub.value) == [2] * 8


def test_a_sync_without_changes_sends_no_code(inproc_cluster: Cluster, project: Project) -> None:
    # What to send is the client's and the scheduler plugin's decision: in-process nodes do.
    _sync(inproc_cluster, project)
    report = _sync(inproc_cluster, project)
    assert report.shipped == ()
    assert {u.status for u in report.units} == {"unchanged"}
    assert sum(u.bytes_sent for u in report.units) == 0


def test_deleted_module_is_no_longer_importable(cluster: Cluster, project: Project) -> None:
    project.write("{pkg}/old.py", "X = 1\n")
    project.write("{pkg}/gone/__init__.py", "Y = 1\n")
    _sync(cluster, project)
    old, gone = f"{project.name}.old", f"{project.name}.gone"
    for name in (old, gone):  # importable now (and compiled into __pycache__ on the workers)
        results = cluster.client.run(importlib.import_module, name, on_error="return")
        assert not any(isinstance(r, Exception) for r in results.values()), results

    project.remove("{pkg}/old.py")
    project.remove("{pkg}/gone/__init__.py")
    project.remove("helpers.py")
    report = _sync(cluster, project)

    assert "helpers" in [u.name for u in report.units if u.status == "removed"]
    for name in (old, gone, "helpers"):
        results = cluster.client.run(importlib.import_module, name, on_error="return")
        assert results and all(isinstance(r, ModuleNotFoundError) for r in results.values()), (
            results
        )


def test_worker_started_after_several_syncs_runs_current_code(
    cluster: Cluster, project: Project
) -> None:
    for value in range(2, 6):
        project.write("{pkg}/sub.py", f"VALUE = {value}\n\ndef value():\n    return VALUE\n")
        _sync(cluster, project)
    cluster.add_worker()
    assert len(cluster.workers) == 3
    assert cluster.on_every_worker(project.module("{pkg}.sub").value) == [5] * 12


def test_ten_syncs_keep_the_scheduler_registration_count(
    inproc_cluster: Cluster, project: Project
) -> None:
    def registrations(dask_scheduler):  # type: ignore[no-untyped-def]
        return len(dask_scheduler.plugins), len(dask_scheduler.worker_plugins)

    cluster = inproc_cluster  # a plugin count is the scheduler's: in-process nodes show it
    _sync(cluster, project)
    before = cluster.client.run_on_scheduler(registrations)
    for value in range(10):
        project.write("{pkg}/sub.py", f"VALUE = {value}\n")
        _sync(cluster, project)
    assert cluster.client.run_on_scheduler(registrations) == before


def test_persisted_results_survive_a_sync(cluster: Cluster, project: Project) -> None:
    _sync(cluster, project)
    sub = project.module("{pkg}.sub")
    held = cluster.client.submit(sub.value, pure=False)
    bag = dask.bag.from_sequence(range(100), npartitions=4).map(lambda x: x * 2)
    persisted = cluster.client.persist(bag)
    assert held.result() == 1
    wait(futures_of(persisted))

    project.write("{pkg}/sub.py", "VALUE = 2\n\ndef value():\n    return VALUE\n")
    _sync(cluster, project)

    in_memory = cluster.client.who_has([held, *futures_of(persisted)])
    assert all(in_memory.values()) and len(in_memory) == 5
    assert held.result() == 1 and persisted.compute() == [x * 2 for x in range(100)]
    assert cluster.client.submit(sub.value, pure=False).result() == 2


def test_scheduler_imports_the_new_code(process_cluster: Cluster, project: Project) -> None:
    probe = project.module("{pkg}.probe")
    _sync(process_cluster, project)
    sub = f"{project.name}.sub"
    assert process_cluster.client.run_on_scheduler(probe.read, sub) == 1

    project.write("{pkg}/sub.py", "VALUE = 2\n")
    _sync(process_cluster, project)
    assert process_cluster.client.run_on_scheduler(probe.read, sub) == 2


def test_nodes_do_not_need_shipit(process_cluster: Cluster, project: Project) -> None:
    results = process_cluster.client.run(importlib.import_module, "shipit", on_error="return")
    assert all(isinstance(r, ModuleNotFoundError) for r in results.values())
    _sync(process_cluster, project)
    assert process_cluster.on_every_worker(project.module("{pkg}.sub").value) == [1] * 8


def test_syntax_error_keeps_the_last_good_code(cluster: Cluster, project: Project) -> None:
    _sync(cluster, project)
    sub = project.module("{pkg}.sub")
    broken = project.write("{pkg}/sub.py", "VALUE = (2\n")

    with pytest.raises(shipit.PackError) as info:
        shipit.sync(cluster.client, project.root)

    assert f"{broken}:1: '(' was never closed" in str(info.value)
    assert cluster.on_every_worker(sub.value) == [1] * 8
    report = shipit.sync(cluster.client, project.root, strict=False)
    assert [u.status for u in report.units if u.name == project.name] == ["not shipped"]
    assert "helpers" not in [u.name for u in report.units if u.status == "removed"]
