"""The fixtures: real projects on disk and real Dask clusters on loopback (see helpers.py)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import sysconfig
import uuid
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from .helpers import Cluster, ProcessCluster, Project
from .nodeenvs import node_python  # noqa: F401  (a fixture: node venvs on other Python minors)

# A test that asks for one of these starts a cluster, whatever module it is in.
_CLUSTER_FIXTURES = frozenset({"cluster", "local_cluster", "process_cluster", "bare_python"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    name = f"pkg_{uuid.uuid4().hex[:8]}"
    proj = Project(tmp_path / "project", name)
    proj.write("{pkg}/__init__.py", '"""A package under development."""\n')
    proj.write(
        "{pkg}/sub.py",
        """
        VALUE = 1

        def value():
            return VALUE
        """,
    )
    proj.write(
        "{pkg}/probe.py",
        """
        import importlib

        def read(module, attribute="VALUE"):
            return getattr(importlib.import_module(module), attribute)
        """,
    )
    proj.write("helpers.py", "def helper():\n    return 'helped'\n")
    # The user runs their script from the project folder: the client imports from disk.
    monkeypatch.syspath_prepend(str(proj.root))
    yield proj
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".") or m == "helpers"]:
        del sys.modules[mod]


@contextlib.contextmanager
def _local(kind: str, processes: bool) -> Iterator[Cluster]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=":0"
        ) as lc,
        Client(lc) as client,
    ):

        def add_worker() -> None:
            n = len(lc.workers) + 1
            lc.scale(n)
            client.wait_for_workers(n, timeout=60)

        yield Cluster(kind, client, add_worker, lc.scheduler_address, in_process_scheduler=True)


@pytest.fixture
def local_cluster() -> Iterator[Cluster]:
    with _local("local", processes=True) as cluster:
        yield cluster


@pytest.fixture
def inproc_cluster() -> Iterator[Cluster]:
    """A real Scheduler and real Workers in this process (threads, no processes): for tests of
    what shipit and its plugins decide, not of code reaching other processes. Starts in a
    fraction of a second."""
    with _local("inproc", processes=False) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python for nodes: its own venv that sees Dask's packages but not shipit."""
    env = tmp_path_factory.mktemp("bare-venv")
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    site = subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    ).strip()
    # A path line in a .pth adds that folder but not the .pth files inside it, so the
    # editable install of shipit in the main environment stays invisible here.
    Path(site, "dask-stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture
def process_cluster(tmp_path: Path, bare_python: Path) -> Iterator[Cluster]:
    workdir = tmp_path / "nodes"
    workdir.mkdir()
    pc = ProcessCluster(bare_python, workdir)
    try:
        address = pc.start_scheduler()
        for _ in range(2):
            pc.start_worker()
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)

            def add_worker() -> None:
                n = len(client.scheduler_info(n_workers=-1)["workers"]) + 1
                pc.start_worker()
                client.wait_for_workers(n, timeout=60)

            yield Cluster("processes", client, add_worker, address, in_process_scheduler=False)
    finally:
        pc.close()


@pytest.fixture(params=["local", "process"])
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """Each cluster test runs against LocalCluster(processes=True) and real node processes."""
    return request.getfixturevalue(f"{request.param}_cluster")
