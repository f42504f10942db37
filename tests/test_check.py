"""Version parity against real `dask scheduler` / `dask worker` processes, each from its own venv.

``paritypkg`` 1.0.0 and 2.0.0 are built into wheels here with ``build`` and installed with pip
from that local folder: no network. The client has 2.0.0; the project imports paritypkg.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import sysconfig
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import dask
import pytest
from distributed import Client

import shipit

from .helpers import Cluster, ProcessCluster, Project, dist_project

pytestmark = pytest.mark.cluster  # every test here starts a cluster or a shipit process

OLD, NEW = "1.0.0", "2.0.0"


def _run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """paritypkg-1.0.0 and -2.0.0 wheels, built offline with the environment's setuptools."""
    out = tmp_path_factory.mktemp("wheels")
    builds = []
    for version in (OLD, NEW):
        src = dist_project(tmp_path_factory.mktemp(f"paritypkg-{version}"), "paritypkg", version)
        command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", out, src]
        builds.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for build in builds:
        assert build.wait() == 0, build.stderr.read() if build.stderr else ""
    return out


def _pip_install(python: Path, wheels: Path, version: str) -> subprocess.Popen[bytes]:
    """pip from this environment installs into the node's venv (``--python``): no pip there."""
    return subprocess.Popen(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index",
         "--find-links", wheels, f"paritypkg=={version}"],
        stderr=subprocess.PIPE,
    )  # fmt: skip


def _node_venv(folder: Path) -> Path:
    """A venv for nodes; its own site-packages first, then (by a .pth) this one's for Dask."""
    venv.create(folder, with_pip=False)
    python = folder / "bin" / "python"
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    Path(site.stdout.strip(), "dask-stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _make_envs(root: Path, wheels: Path, versions: dict[str, str]) -> dict[str, Path]:
    pythons = {name: _node_venv(root / name) for name in versions}
    installs = [_pip_install(pythons[n], wheels, v) for n, v in versions.items()]
    for install in installs:
        assert install.wait() == 0, install.stderr.read() if install.stderr else ""
    return pythons


@pytest.fixture(scope="session")
def envs(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> dict[str, Path]:
    return _make_envs(tmp_path_factory.mktemp("envs"), wheels, {OLD: OLD, NEW: NEW})


@pytest.fixture(scope="session")
def client_site(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Path:
    """The client's paritypkg 2.0.0, in a folder to put on sys.path or PYTHONPATH."""
    target = tmp_path_factory.mktemp("client-site")
    _run(sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels,
         "--target", target, f"paritypkg=={NEW}")  # fmt: skip
    return target


class Nodes(ProcessCluster):
    def start_worker_from(self, python: Path) -> subprocess.Popen[bytes]:
        own, self.python = self.python, python
        try:
            self.start_worker()
        finally:
            self.python = own
        return self.procs[-1]


@pytest.fixture
def nodes(tmp_path: Path, envs: dict[str, Path]) -> Iterator[Nodes]:
    """A scheduler from the 2.0.0 venv; tests start the workers they need."""
    (tmp_path / "nodes").mkdir()
    cluster = Nodes(envs[NEW], tmp_path / "nodes")
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def job(project: Project) -> Project:
    project.write("job.py", "import paritypkg\n\n\ndef run():\n    return paritypkg.version()\n")
    return project


@pytest.fixture
def client_has_new(client_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.syspath_prepend(str(client_site))
    import paritypkg

    assert paritypkg.version() == NEW
    yield paritypkg
    sys.modules.pop("paritypkg", None)


def _connect(address: str, workers: int) -> Client:
    client = Client(address, timeout=30)
    client.wait_for_workers(workers, timeout=60)
    return client


def _addresses_from(client: Client, python: Path) -> list[str]:
    prefixes = client.run(getattr, sys, "prefix")
    return sorted(a for a, prefix in prefixes.items() if Path(prefix) == python.parent.parent)


def _shipit_check(
    project: Project, address: str, client_site: Path, *options: str, command: str = "check"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env["PYTHONPATH"] = str(client_site)
    argv = [sys.executable, "-m", "shipit", command, str(project.root), "--scheduler", address]
    return subprocess.run([*argv, *options], capture_output=True, text=True, env=env, timeout=120)


def test_check_names_the_package_the_versions_and_the_worker(
    nodes: Nodes, envs: dict[str, Path], job: Project, client_site: Path
) -> None:
    address = nodes.start_scheduler()
    nodes.start_worker_from(envs[NEW])
    nodes.start_worker_from(envs[OLD])
    with _connect(address, 2) as client:
        (old_worker,) = _addresses_from(client, envs[OLD])

    done = _shipit_check(job, address, client_site)

    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("paritypkg ")]
    assert line.split() == [
        "paritypkg", NEW, NEW, "1", "worker:", f"{NEW};", OLD, "on", old_worker,
        "error", "install", f"paritypkg=={NEW}", "on", "1", "worker", f"({old_worker})",
    ]  # fmt: skip
    assert "1 error" in done.stdout.splitlines()[-1]

    code_only = _shipit_check(job, address, client_site, "--no-install", command="sync")

    assert code_only.returncode == 0, code_only.stdout + code_only.stderr
    assert (
        "note       versions differ on the cluster (paritypkg): `shipit check` shows them; "
        "`shipit sync` without --no-install installs them"
    ) in code_only.stdout.splitlines()


def test_check_exits_0_when_every_node_has_the_same_versions(
    nodes: Nodes, envs: dict[str, Path], job: Project, client_site: Path
) -> None:
    address = nodes.start_scheduler()
    nodes.start_worker_from(envs[NEW])
    nodes.start_worker_from(envs[NEW])
    with _connect(address, 2):
        pass

    done = _shipit_check(job, address, client_site, "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    (row,) = [r for r in report["rows"] if r["package"] == "paritypkg"]
    assert (row["client"], row["scheduler"], row["workers"], row["severity"]) == (
        NEW,
        NEW,
        f"2 workers: {NEW}",
        "ok",
    )
    assert report["ok"] is True and len(report["workers"]) == 2


def test_guard_refuses_a_submission_once_a_worker_with_another_version_joined(
    nodes: Nodes, envs: dict[str, Path], job: Project, client_has_new: object
) -> None:
    paritypkg = client_has_new
    version = paritypkg.version  # type: ignore[attr-defined]
    address = nodes.start_scheduler()
    nodes.start_worker_from(envs[NEW])
    with _connect(address, 1) as client, shipit.guard(client, job.root) as guard:
        checks = guard.checks
        assert client.submit(version, pure=False).result() == NEW
        assert client.gather(client.map(version, range(3), pure=False)) == [NEW] * 3
        assert client.compute(dask.delayed(version)(1)).result() == NEW
        assert client.persist(dask.delayed(version)(2)).compute() == NEW
        assert dask.compute(dask.delayed(version)(3)) == (NEW,)
        assert guard.checks == checks  # the cached verdict: no new probe for five submissions

        bad = nodes.start_worker_from(envs[OLD])
        client.wait_for_workers(2, timeout=60)
        (old_worker,) = _addresses_from(client, envs[OLD])
        tasks = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))

        attempts = {
            "submit": lambda: client.submit(version, pure=False),
            "map": lambda: client.map(version, range(3), pure=False),
            "compute": lambda: client.compute(dask.delayed(version)(4)),
            "persist": lambda: client.persist(dask.delayed(version)(5)),
            "dask.compute": lambda: dask.compute(dask.delayed(version)(6)),
        }
        for name, attempt in attempts.items():
            with pytest.raises(shipit.VersionMismatch) as info:
                attempt()
            message = str(info.value)
            assert f"{OLD} on {old_worker}" in message and f"paritypkg=={NEW}" in message, name
        assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == tasks

        guard.close()
        with shipit.guard(client, job.root) as again:  # on a mismatched cluster: refuses at once
            assert again.report is not None and not again.report.ok
            with pytest.raises(shipit.VersionMismatch):
                client.submit(version, pure=False)

            bad.terminate()
            bad.wait(timeout=30)
            deadline = time.monotonic() + 30
            while len(client.scheduler_info()["workers"]) > 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.submit(version, pure=False).result() == NEW  # fixed: flowing again
    assert "_graph_to_futures" not in vars(client)  # closing the guard unwrapped the client


def test_a_package_upgraded_under_a_running_worker_needs_a_restart(
    tmp_path: Path, nodes: Nodes, wheels: Path, job: Project, client_has_new: object
) -> None:
    python = _make_envs(tmp_path, wheels, {"upgraded": OLD})["upgraded"]
    address = nodes.start_scheduler()
    nodes.start_worker_from(python)
    with _connect(address, 1) as client:
        (worker,) = client.run(getattr, sys, "prefix")
        assert client.submit(client_has_new.version, pure=False).result() == OLD  # type: ignore[attr-defined]
        assert _pip_install(python, wheels, NEW).wait() == 0  # under the running worker

        report = shipit.check(client, job.root, strict=False)

        (row,) = [r for r in report.errors if r.package == "paritypkg"]
        assert row.workers == f"1 worker: {NEW} installed, {OLD} loaded"
        restart = f"restart 1 worker ({worker}): paritypkg {NEW} is installed but {OLD} is still"
        assert row.suggestion == f"{restart} loaded"
        with pytest.raises(shipit.VersionMismatch, match="restart 1 worker"):
            shipit.check(client, job.root)  # the process still runs 1.0.0: still told

        client.restart()
        assert shipit.check(client, job.root).ok


def test_a_sync_makes_the_guard_check_again(local_cluster: Cluster, project: Project) -> None:
    client = local_cluster.client
    shipit.sync(client, project.root)
    sub = project.module("{pkg}.sub")
    with shipit.guard(client, project.root) as guard:
        assert client.submit(sub.value, pure=False).result() == 1
        checks = guard.checks

        project.write("{pkg}/sub.py", "VALUE = 2\n\ndef value():\n    return VALUE\n")
        shipit.sync(client, project.root)

        # This process still runs the old module: its own sub.value() would say 1.
        with pytest.raises(shipit.VersionMismatch, match=r"runs an older `pkg_\w+\.sub`"):
            client.submit(sub.value, pure=False)
        importlib.reload(sub)
        assert client.submit(sub.value, pure=False).result() == 2 == sub.value()
        assert client.submit(sub.value, pure=False).result() == 2
        assert guard.checks == checks + 2  # after the sync, after the reload, then cached
        assert guard.report is not None
        (code,) = [row for row in guard.report.rows if row.package == project.name]
        assert (code.kind, code.severity, code.workers) == (
            "code",
            "ok",
            f"2 workers: {code.client}",
        )


def test_a_declared_dependency_installed_nowhere_is_named(
    inproc_cluster: Cluster, project: Project
) -> None:
    project.write(
        "pyproject.toml",
        '[project]\nname = "montecarlo-lab"\nversion = "1"\ndependencies = ["nowhere-dist>=1"]\n',
    )
    report = shipit.check(inproc_cluster.client, project.root)
    (row,) = [r for r in report.rows if r.package == "nowhere-dist"]
    assert (row.severity, row.client) == ("warning", "missing")
    assert row.suggestion.startswith("required by montecarlo-lab, installed nowhere")
    assert report.ok  # a warning: nothing on the cluster can be fixed by a sync


def test_sync_names_a_declared_dependency_installed_nowhere(
    inproc_cluster: Cluster, project: Project
) -> None:
    project.write(
        "pyproject.toml",
        '[project]\nname = "montecarlo-lab"\nversion = "1"\ndependencies = ["nowhere-dist"]\n',
    )
    report = shipit.sync(inproc_cluster.client, project.root)
    assert report.ok, report
    assert report.install is not None
    assert [s for s in report.install.skipped if s.startswith("nowhere-dist: required by")]
