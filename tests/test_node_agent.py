"""The node agent on real clusters: Dask's own restarts, versions that never change once
visible, file-to-folder and case-only changes, failures half-way, imports racing switches."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import shipit
from shipit.project.pack import file_digest, unit_digest

from .helpers import Cluster, Project
from .nodeenvs import wait_until

# Process-cluster workers cannot import this test module: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _sync(project: Project | Path, address: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``shipit sync`` as the user runs it: a new process each time, from the project."""
    root = project.root if isinstance(project, Project) else project
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    return subprocess.run(
        [sys.executable, "-m", "shipit", "sync", "--scheduler", address, "--no-install", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _set_value(project: Project, value: object) -> None:
    project.write("{pkg}/sub.py", f"VALUE = {value!r}\n\ndef value():\n    return VALUE\n")


def _other_project(tmp_path: Path) -> tuple[Path, str]:
    """A second project, as another user of the cluster would sync it."""
    name = f"other_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "other"
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("SEVEN = 7\n")
    return root, name


def _node_files(dask_worker: Any = None, dask_scheduler: Any = None) -> dict[str, Any]:
    """Per unit, the digest a node reports and the digest of the files it actually runs."""
    import hashlib as _hashlib
    import os as _os

    store = (dask_worker or dask_scheduler)._shipit_store
    found = {}
    for name, unit in store.units.items():
        manifest = {}
        for folder, _, files in _os.walk(unit["path"]):
            for file in files:
                path = _os.path.join(folder, file)
                rel = _os.path.relpath(path, unit["path"]).replace(_os.sep, "/")
                if "__pycache__" not in rel:
                    with open(path, "rb") as f:
                        manifest[rel] = _hashlib.sha256(f.read()).hexdigest()
        found[name] = (unit["digest"], manifest)
    return found


def _holds_what_it_reports(client: Any, workers: list[str]) -> None:
    """No node reports a digest over files that are not that version's, whole."""
    for address, units in client.run(_node_files, workers=workers).items():
        for name, (reported, manifest) in units.items():
            assert unit_digest(name, manifest) == reported, (address, name)


def test_syncs_from_new_processes_around_dask_restarts_reach_every_worker(
    process_cluster: Cluster, project: Project, tmp_path: Path
) -> None:
    client, address = process_cluster.client, process_cluster.scheduler_address
    value = project.module("{pkg}.sub").value
    other_root, other = _other_project(tmp_path)
    for n in range(1, 4):  # pushes before the restart: generations ahead of a fresh count
        _set_value(project, n)
        assert _sync(project, address).returncode == 0
    assert _sync(other_root, address).returncode == 0

    client.restart()
    _set_value(project, 4)
    result = _sync(project, address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "synced" in result.stdout
    assert process_cluster.on_every_worker(value) == [4] * 8
    # The other project's units stayed on every worker, through the restart.
    assert (
        process_cluster.on_every_worker(project.module("{pkg}.probe").read, other, "SEVEN")
        == [7] * 8
    )

    client.restart_workers(process_cluster.workers)
    _set_value(project, 5)
    result = _sync(project, address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert process_cluster.on_every_worker(value) == [5] * 8
    assert (
        process_cluster.on_every_worker(project.module("{pkg}.probe").read, other, "SEVEN")
        == [7] * 8
    )
    _holds_what_it_reports(client, process_cluster.workers)


def test_registering_the_agent_again_keeps_every_projects_units(
    local_cluster: Cluster, project: Project, tmp_path: Path
) -> None:
    """A client of another shipit version registers its own agent: nothing is lost."""
    from shipit.agent import plugin
    from shipit.node import plugins, worker

    client, address = local_cluster.client, local_cluster.scheduler_address
    other_root, other = _other_project(tmp_path)
    assert _sync(project, address).returncode == 0
    assert _sync(other_root, address).returncode == 0

    async def register(op: str, cls: type) -> Any:
        return await getattr(client.scheduler, op)(
            plugin=plugin(cls, "another-agent"), name="shipit", idempotent=False
        )

    client.sync(register, "register_scheduler_plugin", plugins.ShipitSchedulerPlugin)
    client.sync(register, "register_worker_plugin", worker.ShipitWorkerPlugin)
    assert (
        local_cluster.on_every_worker(project.module("{pkg}.probe").read, other, "SEVEN") == [7] * 8
    )
    _set_value(project, 2)
    result = _sync(project, address)  # sees another agent: registers its own, keeps state
    assert result.returncode == 0, result.stderr
    assert local_cluster.on_every_worker(project.module("{pkg}.sub").value) == [2] * 8
    assert (
        local_cluster.on_every_worker(project.module("{pkg}.probe").read, other, "SEVEN") == [7] * 8
    )


def test_a_data_file_that_becomes_a_folder_and_back(cluster: Cluster, project: Project) -> None:
    project.write("{pkg}/templates", "one file\n")
    project.write(
        "{pkg}/data.py",
        """
        from importlib import resources
        from pathlib import Path

        def read(*parts):
            return resources.files(__package__).joinpath(*parts).read_text()

        def kind():
            path = Path(__file__).parent / "templates"
            return "folder" if path.is_dir() else "file"
        """,
    )
    data = project.module("{pkg}.data")
    shipit.sync(cluster.client, project.root, install=False)
    assert cluster.on_every_worker(data.read, "templates", per_worker=1) == ["one file\n"] * 2

    project.remove("{pkg}/templates")
    project.write("{pkg}/templates/a.html", "<p>a</p>\n")
    report = shipit.sync(cluster.client, project.root, install=False)
    assert report.ok, report.failures
    assert cluster.on_every_worker(data.kind, per_worker=1) == ["folder"] * 2
    assert (
        cluster.on_every_worker(data.read, "templates", "a.html", per_worker=1)
        == ["<p>a</p>\n"] * 2
    )

    (project.root / project.name / "templates" / "a.html").unlink()
    (project.root / project.name / "templates").rmdir()
    project.write("{pkg}/templates", "a file again\n")
    report = shipit.sync(cluster.client, project.root, install=False)
    assert report.ok, report.failures
    assert cluster.on_every_worker(data.read, "templates", per_worker=1) == ["a file again\n"] * 2
    _holds_what_it_reports(cluster.client, cluster.workers)


def test_a_case_only_rename(cluster: Cluster, project: Project) -> None:
    project.write("{pkg}/Model.py", "WHO = 'upper'\n")
    shipit.sync(cluster.client, project.root, install=False)
    assert (
        cluster.on_every_worker(
            project.module("{pkg}.probe").read, f"{project.name}.Model", "WHO", per_worker=1
        )
        == ["upper"] * 2
    )
    os.rename(project.root / project.name / "Model.py", project.root / project.name / "model.py")
    (project.root / project.name / "model.py").write_text("WHO = 'lower'\n")
    report = shipit.sync(cluster.client, project.root, install=False)
    assert report.ok, report.failures
    assert (
        cluster.on_every_worker(
            project.module("{pkg}.probe").read, f"{project.name}.model", "WHO", per_worker=1
        )
        == ["lower"] * 2
    )

    def gone(name: str) -> bool:
        import importlib

        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            return True
        return False

    assert cluster.on_every_worker(gone, f"{project.name}.Model", per_worker=1) == [True] * 2
    _holds_what_it_reports(cluster.client, cluster.workers)


def _next_version_folder(project: Project, rel: str, text: str) -> str:
    """The name the version folder of ``project`` will have once ``rel`` holds ``text``."""
    pack = next(p for p in shipit.plan(project.root).packs if p.name == project.name)
    manifest = {**pack.manifest, f"{project.name}/{rel}": file_digest(text.encode())}
    return f"{project.name}-{unit_digest(project.name, manifest)[:16]}"


def test_a_push_that_fails_half_way_leaves_the_old_version_then_the_repair_lands_whole(
    process_cluster: Cluster, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real failure on one node after every file of the new version was written: the
    node keeps the old digest and the old code, and the same sync again repairs it."""
    client, address = process_cluster.client, process_cluster.scheduler_address
    before = set(process_cluster.workers)
    with monkeypatch.context() as env:  # a worker with a store of its own: a host of its own
        env.setenv("DASK_SHIPIT__DIRECTORY", str(tmp_path / "victim-store"))
        process_cluster.add_worker()
    (victim,) = set(process_cluster.workers) - before
    assert _sync(project, address).returncode == 0
    value = project.module("{pkg}.sub").value
    old = next(p.digest for p in shipit.plan(project.root).packs if p.name == project.name)
    folder = _next_version_folder(
        project, "sub.py", "VALUE = 2\n\ndef value():\n    return VALUE\n"
    )

    def block(folder: str, dask_worker: Any, remove: bool = False) -> None:
        # A file where the version's folder must go: the last step of the push fails.
        target = os.path.join(dask_worker._shipit_store.host.versions, folder)
        os.unlink(target) if remove else open(target, "w").close()

    client.run(block, folder, workers=[victim])
    _set_value(project, 2)
    result = _sync(project, address)
    assert result.returncode == 1
    assert f"failed     {victim}: NotADirectoryError" in result.stderr
    assert client.run(_node_files, workers=[victim])[victim][project.name][0] == old
    _holds_what_it_reports(client, process_cluster.workers)
    on = {
        w: client.submit(value, pure=False, workers=[w], allow_other_workers=False).result()
        for w in process_cluster.workers
    }
    assert on == {w: 1 if w == victim else 2 for w in process_cluster.workers}

    client.run(block, folder, remove=True, workers=[victim])
    result = _sync(project, address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1/1 lagging node(s) brought up to date" in result.stdout
    assert process_cluster.on_every_worker(value) == [2] * 12
    _holds_what_it_reports(client, process_cluster.workers)


WRITERS = 3


def test_tasks_importing_during_saves_never_fail(cluster: Cluster, project: Project) -> None:
    """Thousands of tasks import shipped modules inside their bodies while saves land,
    some of which truncate a file and write it again: not one task fails."""
    for i in range(5):
        project.write(
            f"{{pkg}}/mod{i}.py", f"from . import sub\n\n\ndef f():\n    return sub.VALUE + {i}\n"
        )

    package = project.name

    def work(n: int) -> int:
        import importlib
        import sys

        total = 0
        for i in range(5):
            module = importlib.import_module(f"{package}.mod{i}")
            try:
                total += module.f()
            except AttributeError as e:  # say what the node held: an empty file, or a module
                sub = getattr(module, "sub", None)  # not run yet? (seen once, under load)
                same = sub is sys.modules.get(f"{package}.sub")
                path = getattr(sub, "__file__", None) or ""
                try:
                    with open(path) as f:
                        text: str | None = f.read()
                except OSError:
                    text = None
                names = sorted(n for n in vars(sub) if not n.startswith("__")) if sub else None
                said = f"{e}; {path} holds {text!r}; names {names}; in sys.modules: {same}"
                raise AttributeError(said) from None
        return total

    report = shipit.sync(cluster.client, project.root, install=False)
    assert report.ok
    stop = threading.Event()
    saves = [0]

    def saver() -> None:
        n = 1
        while not stop.is_set() and n < 400:
            path = project.root / project.name / "sub.py"
            with open(path, "w") as f:  # truncate, then write: what many editors do
                f.write(f"VALUE = {n}\n")
                f.flush()
                f.write("\n")
            n += 1
            saves[0] = n
            time.sleep(0.005)

    errors: list[str] = []
    with shipit.watch(cluster.client, project.root, on_event=lambda e: None):
        thread = threading.Thread(target=saver)
        thread.start()
        try:
            done = 0
            while done < 2000:
                futures = cluster.client.map(work, range(done, done + 200), pure=False)
                for future in futures:
                    try:
                        future.result()
                    except Exception as e:
                        errors.append(f"{type(e).__name__}: {e}")
                done += 200
        finally:
            stop.set()
            thread.join()
    assert errors == [], errors[:5]
    assert saves[0] > 10


def test_a_task_running_across_a_switch_reads_its_own_version_which_then_goes(
    local_cluster: Cluster, project: Project, tmp_path: Path
) -> None:
    project.write("{pkg}/data.txt", "old\n")
    project.write(
        "{pkg}/reader.py",
        """
        import os
        import time
        from pathlib import Path

        def read_later(started, go):
            Path(started).touch()
            while not os.path.exists(go):
                time.sleep(0.01)
            here = Path(__file__).parent
            return (here / "data.txt").read_text(), str(here)
        """,
    )
    client = local_cluster.client
    shipit.sync(client, project.root, install=False)
    started, go = tmp_path / "started", tmp_path / "go"
    task = client.submit(project.module("{pkg}.reader").read_later, str(started), str(go))
    wait_until(started.exists, 60, "the task to start")

    project.write("{pkg}/data.txt", "new\n")
    assert shipit.sync(client, project.root, install=False).ok
    go.touch()
    text, folder = task.result(timeout=60)
    assert text == "old\n"  # the version it started on, still whole on disk

    project.write("{pkg}/data.txt", "newer\n")  # the next push collects what nobody reads
    assert shipit.sync(client, project.root, install=False).ok
    wait_until(lambda: not os.path.exists(folder), 30, "the old version to be deleted")
