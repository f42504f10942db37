"""Real workers on another Python minor (issue 11): told, never crashed, never silently dropped.

One cluster for the module, all on loopback and all running the same dask/distributed: a
``dask scheduler`` and a worker on the client's Python, a nanny worker on 3.12 (3.13 when the
client runs 3.12) and plain workers on the other minors from 3.10 to 3.13
(``tests/nodeenvs.py``; a minor pyenv lacks is left out). Each
test ships a project of its own into it, through the ``shipit`` command (a real process)
or the Python API, and asserts what a user sees: exit codes, the lines printed, the values
tasks return; and, after each test, that every worker is alive, connected and never crashed.
"""

from __future__ import annotations

import operator
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

import shipit
from shipit.errors import PushFailed, VersionMismatch
from shipit.install.requirements import SCHEDULER, needs
from shipit.parity.versions import compare

from .helpers import Project
from .nodeenvs import (
    CLIENT_MINOR,
    NANNY_MINOR,
    OTHER_MINORS,
    NodeCluster,
    NodePython,
    wait_until,
)

CLIENT_PYTHON = Path(sys.executable)
CLIENT_VERSION = ".".join(map(str, sys.version_info[:3]))
SAME = f"py{CLIENT_MINOR}"

# Real node processes (other Pythons), loop-mounted file systems.
pytestmark = pytest.mark.cluster


@dataclass
class Mixed:
    """The cluster: ``others`` maps each other minor to its node Python."""

    nc: NodeCluster
    client: Client
    address: str
    others: dict[str, NodePython]

    def worker(self, minor: str) -> str:
        """The address worker ``py<minor>`` has now (a nanny restart changes it)."""
        return self.nc.wait_for_worker(self.client, f"py{minor}")

    def mismatched(self) -> dict[str, str]:
        """Each worker on another minor, by its address now: its full Python version."""
        return {self.worker(m): node.version for m, node in self.others.items()}

    def assert_healthy(self) -> None:
        """Every worker alive and connected, and none ever crashed (a nanny logs each signal
        its worker dies of; faulthandler logs a segfault)."""
        for name, node in self.nc.workers.items():
            assert node.crashes() == [], f"{name} crashed:\n{node.log_text()[-3000:]}"
            assert node.alive, f"{name} exited"
            assert self.nc.address_of(self.client, name), f"{name} is not connected"


@pytest.fixture(scope="module")
def mixed(
    node_python: Callable[[str], NodePython], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mixed]:
    others = {}
    for minor in OTHER_MINORS:
        try:
            others[minor] = node_python(minor)
        except pytest.skip.Exception:  # pyenv has no such Python: test with the others
            continue
    if not others:
        pytest.skip(f"pyenv has none of Python {', '.join(OTHER_MINORS)}")
    with pytest.MonkeyPatch.context() as mp:
        # The nodes inherit this environment: pip there reads no index or links of this
        # machine, only the options a test passes (and never the network: --no-index).
        for name in [k for k in os.environ if k.startswith("PIP_")]:
            mp.delenv(name)
        mp.setenv("PIP_CONFIG_FILE", os.devnull)
        # A host store of their own: stores in /dev/shm are shared by every shipit on this
        # machine, other checkouts' test runs included, whose agents may lay it out otherwise.
        mp.setenv("DASK_SHIPIT__DIRECTORY", str(tmp_path_factory.mktemp("store")))
        with NodeCluster(tmp_path_factory.mktemp("mixed")) as nc:
            address = nc.start_scheduler(CLIENT_PYTHON)
            nc.start_worker(SAME, CLIENT_PYTHON)
            for minor, node in others.items():
                nc.start_worker(f"py{minor}", node.python, minor == NANNY_MINOR)
            with Client(address, timeout=30) as client:
                for name in nc.workers:
                    nc.wait_for_worker(client, name)
                yield Mixed(nc, client, address, others)


@pytest.fixture
def healthy(mixed: Mixed) -> Iterator[Mixed]:
    """The cluster, checked after the test: nothing shipit did crashed or dropped a worker."""
    yield mixed
    mixed.assert_healthy()


def shipit_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -m shipit *args`` as a user runs it; never a traceback, never a lost scheduler."""
    base = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-m", "shipit", *map(str, args)],
        capture_output=True,
        text=True,
        env=base,
        timeout=120,
    )
    shown = done.stdout + done.stderr
    assert "Traceback" not in shown, shown
    assert "lost the connection" not in shown, shown
    return done


def mismatch_line(address: str, version: str) -> str:
    minor = ".".join(version.split(".")[:2])
    return (
        f"failed     {address}: Python {minor}, the client runs {CLIENT_MINOR}: "
        "tasks from this client cannot run there"
    )


def lines_starting(text: str, head: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(rf"{re.escape(head)}\s", line)]


def value_on(mixed: Mixed, project: Project, address: str) -> int:
    """``{pkg}.sub.VALUE`` as a task on ``address`` reads it (the task's function travels by
    reference: the node imports the shipped ``{pkg}.probe``)."""
    read = project.module("{pkg}.probe").read
    future = mixed.client.submit(
        read, f"{project.name}.sub", workers=[address], allow_other_workers=False, pure=False
    )
    return int(future.result(timeout=60))


def set_value(project: Project, value: int) -> None:
    project.write("{pkg}/sub.py", f"VALUE = {value}\n\n\ndef value():\n    return VALUE\n")


# --------------------------------------------------------------------------------------------


def test_check_has_a_python_row_naming_each_node_and_no_probe_failure(
    healthy: Mixed, project: Project
) -> None:
    mismatched = healthy.mismatched()
    # Shipped first: the workers that cannot take the code must not make those that run it
    # look like the odd ones out.
    shipit.sync(healthy.client, project.root, install=False, strict=False)

    done = shipit_cli("check", project.root, "--scheduler", healthy.address)

    assert done.returncode == 1, done.stdout + done.stderr
    [python] = lines_starting(done.stdout, "python")
    for address, version in mismatched.items():
        assert f"{version} on {address}" in python
    n = len(mismatched)
    assert f"use Python {CLIENT_MINOR} on {n} worker{'s' if n > 1 else ''} (" in python
    assert f"1 worker: {CLIENT_VERSION}" in python
    assert lines_starting(done.stdout, "probe") == []
    assert lines_starting(done.stdout, f"{project.name} (code)") == []
    assert ": 1 error, " in done.stdout

    report = shipit.check(healthy.client, project.root, strict=False)
    [row] = report.errors
    assert (row.package, row.severity) == ("python", "error")
    assert {a: v for a, v in row.by_worker.items() if a in mismatched} == mismatched
    assert row.by_worker[healthy.worker(CLIENT_MINOR)] == CLIENT_VERSION
    assert not [r for r in report.rows if r.kind == "probe"]
    [code] = [r for r in report.rows if r.package == project.name]
    assert code.severity == "ok"
    for address, version in mismatched.items():
        assert code.by_worker[address] == f"n/a: Python {version}"
    with pytest.raises(VersionMismatch, match="python"):
        shipit.check(healthy.client, project.root)


def test_sync_ships_where_it_can_through_edits_and_a_nanny_restart(
    healthy: Mixed, project: Project
) -> None:
    same = healthy.worker(CLIENT_MINOR)
    nanny = f"py{NANNY_MINOR}"
    if NANNY_MINOR not in healthy.others:
        pytest.skip(f"no Python {NANNY_MINOR} for the nanny worker")

    def sync(shipped: bool, install: bool = False) -> None:
        done = shipit_cli(
            "sync", project.root, "--scheduler", healthy.address,
            *([] if install else ["--no-install"]),
        )  # fmt: skip
        assert done.returncode == 1, done.stdout + done.stderr
        failed = lines_starting(done.stderr, "failed")
        assert sorted(failed) == sorted(
            mismatch_line(a, v) for a, v in healthy.mismatched().items()
        ), done.stderr
        assert (f"shipped    {project.name}" in done.stdout) == shipped
        if install:  # nothing to install (the nodes see the client's packages)
            assert "nothing to install; 1 difference(s) remain" in done.stdout
            [differs] = lines_starting(done.stderr, "differs")
            assert differs.startswith(f"differs    python: use Python {CLIENT_MINOR} on ")
        healthy.assert_healthy()

    set_value(project, 1)
    sync(shipped=True, install=True)
    assert value_on(healthy, project, same) == 1
    set_value(project, 2)
    sync(shipped=True)
    assert value_on(healthy, project, same) == 2
    sync(shipped=False)  # nothing changed: the mismatched workers are still named

    before = healthy.worker(NANNY_MINOR)
    inert = f"shipit: Python {NANNY_MINOR}, the client runs {CLIENT_MINOR}"
    said = healthy.nc.workers[nanny].log_text().count(inert)
    healthy.client.restart_workers([before], timeout=120)
    after = wait_until(
        lambda: (a := healthy.nc.address_of(healthy.client, nanny)) != before and a,
        120,
        "the nanny to restart its worker",
    )
    # The agent came back with the new worker process, compiled there, and stayed inert.
    wait_until(lambda: healthy.nc.workers[nanny].log_text().count(inert) > said, 60, "the agent")
    healthy.assert_healthy()

    assert healthy.worker(NANNY_MINOR) == after
    sync(shipped=False)  # names the restarted worker, under its new address
    set_value(project, 3)
    sync(shipped=True, install=True)
    assert value_on(healthy, project, same) == 3
    # The worker is fine for what it can run: a task by reference, on its own Python.
    future = healthy.client.submit(operator.add, 1, 2, workers=[after], allow_other_workers=False)
    assert future.result(timeout=60) == 3


def test_the_python_api_sync_names_the_failures(healthy: Mixed, project: Project) -> None:
    mismatched = healthy.mismatched()
    same = healthy.worker(CLIENT_MINOR)
    expected = {
        a: f"Python {v.rpartition('.')[0]}, the client runs {CLIENT_MINOR}: "
        "tasks from this client cannot run there"
        for a, v in mismatched.items()
    }

    report = shipit.sync(healthy.client, project.root, install=False, strict=False)

    assert [u.name for u in report.shipped] == [project.name]
    assert report.failures == expected
    assert not report.ok
    assert {n.address for n in report.nodes if n.ok} == {healthy.address, same}
    assert value_on(healthy, project, same) == 1

    with pytest.raises(PushFailed) as raised:
        shipit.sync(healthy.client, project.root, install=False)
    for address in mismatched:
        assert address in str(raised.value)
    assert raised.value.report.failures == expected  # type: ignore[attr-defined]


def test_doctor_fails_its_python_check_and_names_the_nodes(healthy: Mixed) -> None:
    mismatched = healthy.mismatched()

    done = shipit_cli("doctor", "--scheduler", healthy.address)

    assert done.returncode == 1, done.stdout + done.stderr
    [python] = lines_starting(done.stdout, "failed   python")
    for address, version in mismatched.items():
        assert re.search(rf"{re.escape(version.rpartition('.')[0])} on [^;]*{address}", python)
    assert re.search(
        rf"{CLIENT_MINOR} on client, scheduler, {healthy.worker(CLIENT_MINOR)}", python
    )
    assert f"fix: use Python {CLIENT_MINOR} on every node" in done.stdout
    assert lines_starting(done.stdout, "ok       workers")  # every worker answered


def test_status_shows_each_nodes_python(healthy: Mixed, project: Project) -> None:
    shipit.sync(healthy.client, project.root, install=False, strict=False)
    pythons = {healthy.worker(CLIENT_MINOR): CLIENT_VERSION, **healthy.mismatched()}

    done = shipit_cli("status", project.root, "--scheduler", healthy.address)

    assert done.returncode == 0, done.stdout + done.stderr
    for address, version in pythons.items():
        [row] = lines_starting(done.stdout, address)
        name = f"py{version.rpartition('.')[0]}"
        assert row.split()[:3] == [address, name, version]
    [scheduler] = lines_starting(done.stdout, healthy.address)
    assert scheduler.split()[:3] == [healthy.address, "scheduler", CLIENT_VERSION]
    # The worker on the client's Python runs the project's code; the others lack it (sync
    # names why).
    [mine] = lines_starting(done.stdout, healthy.worker(CLIENT_MINOR))
    assert "BEHIND" not in mine
    others = sorted(healthy.mismatched())
    summary = f"{len(others)} node(s) behind the local files or not answering: {', '.join(others)}"
    assert done.stdout.splitlines()[-1] == summary


@pytest.fixture
def needs_a_package(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The project depends on a distribution only the client has (on its sys.path, and on
    PYTHONPATH for the command); no node has it and no wheel of it exists."""
    name = f"mmdep_{uuid.uuid4().hex[:8]}"
    site = tmp_path / "client-only"
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text("")
    (site / f"{name}-1.0.dist-info").mkdir()
    (site / f"{name}-1.0.dist-info" / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n\n"
    )
    project.write(
        "pyproject.toml",
        f"""
        [project]
        name = "mm"
        version = "0.1"
        dependencies = ["{name}"]

        [tool.shipit]
        no-index = true
        find-links = ["{tmp_path / "no-wheels"}"]
        """,
    )
    (tmp_path / "no-wheels").mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    return name.replace("_", "-")


def test_install_runs_pip_only_where_the_clients_python_runs(
    healthy: Mixed, project: Project, needs_a_package: str
) -> None:
    """A user expects pip where their tasks can run, and a line for each node where they
    cannot: pinning the client's versions there would install for nothing (or fail on
    wheels that do not exist for that Python)."""
    mismatched = healthy.mismatched()
    same = healthy.worker(CLIENT_MINOR)
    pin = f"{needs_a_package}==1.0"

    report = shipit.install(healthy.client, project.root, strict=False)

    [run] = report.runs  # the client's environment only: the scheduler's, the same-Python worker's
    assert sorted(run.nodes) == sorted([same, "scheduler"])
    assert run.status == "failed" and "No matching distribution found" in (run.error or "")
    for address, version in mismatched.items():
        skip = (
            f"{address}: Python {version}, the client runs {CLIENT_VERSION}: not installing {pin}"
        )
        assert skip in report.skipped
    assert [r.package for r in report.remaining] == ["python", needs_a_package]

    done = shipit_cli("sync", project.root, "--scheduler", healthy.address)

    assert done.returncode == 1, done.stdout + done.stderr
    assert len(lines_starting(done.stderr, "failed")) == 1 + len(mismatched)
    for address, version in mismatched.items():
        assert mismatch_line(address, version) in done.stderr.splitlines()
        assert f"skipped    {address}: Python {version}, the client runs" in done.stdout
    [pip] = [line for line in done.stderr.splitlines() if line.startswith(f"failed     {pin}")]
    assert "No matching distribution found" in pip and same in pip
    assert "pip ran in 1 environment (2 nodes), 0 ok, 1 failed" in done.stdout


# --------------------------------------------------------------------------------------------
# The same rules on plain data: what the cluster tests above rest on


def _facts(python: str, units: dict[str, str] | None, **packages: str) -> dict[str, Any]:
    return {
        "python": python, "implementation": "cpython", "platform": "linux", "machine": "x86_64",
        "packages": {n: {"version": v, "imported": False, "loaded": None}
                     for n, v in packages.items()},
        "units": units,
    }  # fmt: skip


def test_a_node_on_another_python_is_not_the_code_rows_odd_one_out() -> None:
    digest, w1, others = "ab" * 32, "tcp://10.0.0.1:1", ["tcp://10.0.0.2:2", "tcp://10.0.0.3:3"]
    rows = compare(
        _facts("3.11.7", {"pkg": digest}),
        _facts("3.11.7", {"pkg": digest}),
        {w1: _facts("3.11.7", {"pkg": digest}), **{w: _facts("3.12.1", {}) for w in others}},
        {},
    )
    [code] = [r for r in rows if r.kind == "code"]
    assert code.severity == "ok", code.suggestion
    assert code.workers == f"2 workers: n/a: Python 3.12.1; {digest[:12]} on {w1}"
    assert [r.package for r in rows if r.severity == "error"] == ["python"]


def test_no_pip_run_is_planned_on_another_python() -> None:
    w1, w2 = "tcp://10.0.0.1:1", "tcp://10.0.0.2:2"
    rows = compare(
        _facts("3.11.7", None, tiny="2.0.0"),
        _facts("3.11.7", {}),
        {w1: _facts("3.11.7", {}), w2: _facts("3.13.0", {})},
        {"tiny": True},
    )
    need = needs(rows, {"tiny": True})
    assert need.by_node == {SCHEDULER: ("tiny==2.0.0",), w1: ("tiny==2.0.0",)}
    assert need.skipped == (
        f"{w2}: Python 3.13.0, the client runs 3.11.7: not installing tiny==2.0.0",
    )
