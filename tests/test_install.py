"""`shipit sync` installs what workers lack: real pip in real `dask worker` processes, no network.

``instpkg`` 1.0.0 and 2.0.0, ``ghostpkg`` 3.0.0 and ``locallib`` 0.3.0 (a project of its own,
a path dependency) are built into wheels here with ``build``. Each node runs from its own venv,
copied from a template: its own site-packages first, then (by a .pth) this environment's, for
Dask and pip, so ``python -m pip`` works inside it and installs into it. The client has
instpkg 2.0.0, ghostpkg 3.0.0 and locallib 0.3.0 on PYTHONPATH. pip reads no configuration
from this machine: only the options a test passes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from distributed import Client

import shipit
from shipit.node import pip as installer

from .helpers import ProcessCluster, Project, dist_project
from .nodeenvs import wait_until

OLD, NEW, GHOST, LOCAL = "1.0.0", "2.0.0", "3.0.0", "0.3.0"
NEED, OPT = "1.1.0", "4.0.0"


def _clean_environ() -> dict[str, str]:
    drop = ("PYTHONPATH", "DASK_SCHEDULER_ADDRESS")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in drop}
    return {**env, "PIP_CONFIG_FILE": os.devnull}


@pytest.fixture(autouse=True)
def no_pip_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nodes and the CLI inherit this environment: no find-links or index from this machine."""
    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


def _run(*args: str | Path) -> None:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=_clean_environ()
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of wheels: ``index`` (instpkg 1.0.0, 2.0.0), ``ghost``, ``local``; and the
    ``locallib`` source folder."""
    root = tmp_path_factory.mktemp("built")
    sources = {
        "index": [("instpkg", OLD), ("instpkg", NEW)],
        "ghost": [("ghostpkg", GHOST)],
        "local": [("locallib", LOCAL)],
        "needdep": [("needdep", NEED)],  # what the workers' wheel folder holds
        "optdep": [("optdep", OPT)],  # the client has it; no folder the workers see does
    }
    builds = []
    for folder, projects in sources.items():
        for name, version in projects:
            src = dist_project(root / "src" / f"{name}-{version}", name, version)
            command = [sys.executable, "-m", "build", "--wheel", "--no-isolation"]
            builds.append(
                subprocess.Popen(
                    [*command, "-o", root / folder, src],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
    for build in builds:
        assert build.wait() == 0, build.stderr.read() if build.stderr else ""
    return {**{f: root / f for f in sources}, "locallib": root / "src" / f"locallib-{LOCAL}"}


def _node_venv(folder: Path, built: dict[str, Path], *packages: str) -> Path:
    """A venv that sees this environment's packages (Dask, pip) after its own."""
    venv.create(folder, with_pip=False, symlinks=True)
    python = folder / "bin" / "python"
    site = subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    )
    Path(site.strip(), "dask-stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    if packages:
        links = [a for f in ("index", "ghost", "local") for a in ("--find-links", built[f])]
        _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index",
             *links, *packages)  # fmt: skip
    return python


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory, built: dict[str, Path]) -> dict[str, Path]:
    """Venvs to copy: a test changes its copies only."""
    root = tmp_path_factory.mktemp("templates")
    wanted = {
        "empty": (),
        "old": (f"instpkg=={OLD}",),
        "new": (f"instpkg=={NEW}",),
        "ghost": (f"ghostpkg=={GHOST}",),
        "scheduler": (f"instpkg=={NEW}", f"ghostpkg=={GHOST}", f"locallib=={LOCAL}"),
    }
    return {name: _node_venv(root / name, built, *p).parent.parent for name, p in wanted.items()}


@pytest.fixture(scope="session")
def client_site(tmp_path_factory: pytest.TempPathFactory, built: dict[str, Path]) -> Path:
    """What the client has: instpkg 2.0.0, ghostpkg 3.0.0, locallib 0.3.0, needdep, optdep."""
    target = tmp_path_factory.mktemp("client-site")
    folders = ("index", "ghost", "local", "needdep", "optdep")
    links = [a for f in folders for a in ("--find-links", built[f])]
    _run(sys.executable, "-m", "pip", "install", "-q", "--no-index", *links, "--target", target,
         f"instpkg=={NEW}", f"ghostpkg=={GHOST}", f"locallib=={LOCAL}", f"needdep=={NEED}",
         f"optdep=={OPT}")  # fmt: skip
    return target


class Nodes(ProcessCluster):
    """A scheduler, and workers each started from the venv a test names."""

    def __init__(self, workdir: Path, templates: dict[str, Path]) -> None:
        self.templates = templates
        super().__init__(self.venv("scheduler", workdir.parent / "scheduler-venv"), workdir)

    def venv(self, template: str, folder: Path) -> Path:
        shutil.copytree(self.templates[template], folder, symlinks=True)
        return folder / "bin" / "python"

    def worker(self, python: Path, *, nanny: bool = True) -> None:
        own, self.python = self.python, python
        try:
            if nanny:
                self.start_worker()
            else:
                self._spawn(
                    "distributed.cli.dask_worker", "--scheduler-file", str(self.scheduler_file),
                    "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1", "--no-nanny",
                )  # fmt: skip
        finally:
            self.python = own


@pytest.fixture
def nodes(tmp_path: Path, templates: dict[str, Path]) -> Iterator[Nodes]:
    (tmp_path / "nodes").mkdir()
    cluster = Nodes(tmp_path / "nodes", templates)
    try:
        yield cluster
    finally:
        cluster.close()


def _address(nodes: Nodes) -> str:
    return str(json.loads(nodes.scheduler_file.read_text())["address"])


def _start(nodes: Nodes, *workers: tuple[Path, bool]) -> Client:
    """A scheduler, then these workers (python, with a nanny?), and a client once all joined."""
    address = nodes.start_scheduler()
    for python, nanny in workers:
        nodes.worker(python, nanny=nanny)
    client = Client(address, timeout=30)
    client.wait_for_workers(len(workers), timeout=60)
    return client


def _shipit(
    nodes: Nodes, project: Project, client_site: Path, *options: str | Path, command: str = "sync"
) -> subprocess.CompletedProcess[str]:
    env = {**_clean_environ(), "PYTHONPATH": str(client_site)}
    command = [sys.executable, "-m", "shipit", command, str(project.root)]
    command += ["--scheduler", _address(nodes), *map(str, options)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=150)


def _json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        return dict(json.loads(done.stdout))
    except ValueError:
        raise AssertionError(f"not JSON:\n{done.stdout}\n{done.stderr}") from None


def _on(client: Client, worker: str, func: Any, *args: Any) -> Any:
    return client.submit(func, *args, workers=[worker], allow_other_workers=False, pure=False)


def _tasks() -> SimpleNamespace:
    """What tests run on workers. Defined in a function, they travel by value: the nodes
    cannot import this test module."""

    def instpkg_version(_: object = None) -> str:
        import instpkg  # type: ignore[import-not-found]

        return str(instpkg.__version__)

    def locallib_version(_: object = None) -> str:
        import importlib.metadata

        import locallib  # type: ignore[import-not-found]

        return f"{locallib.version()} {importlib.metadata.version('locallib')}"

    def importable(name: str) -> bool:
        import importlib.util

        return importlib.util.find_spec(name) is not None

    def run_of(module: str) -> Any:
        import importlib

        return importlib.import_module(module).run()

    def prefix() -> str:
        import sys

        return sys.prefix

    return SimpleNamespace(**locals())


TASKS = _tasks()


@pytest.fixture
def job(project: Project) -> Project:
    project.write("job.py", "import instpkg\n\n\ndef run():\n    return instpkg.version()\n")
    return project


@pytest.mark.cluster
def test_dry_run_changes_nothing_then_sync_installs_once_for_four_workers_of_one_venv(
    tmp_path: Path, nodes: Nodes, built: dict[str, Path], job: Project, client_site: Path
) -> None:
    python = nodes.venv("empty", tmp_path / "shared")
    with _start(nodes, *[(python, True)] * 4) as client:  # four processes start at once
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        assert len(workers) == 4 and len(set(client.run(os.getpid).values())) == 4
        assert set(client.run(TASKS.prefix).values()) == {str(tmp_path / "shared")}
        index = ("--no-index", "--find-links", built["index"])

        plan = _shipit(nodes, job, client_site, "--dry-run", *index)

        assert plan.returncode == 0, plan.stdout + plan.stderr
        (line,) = [line for line in plan.stdout.splitlines() if line.startswith("would install")]
        assert f"instpkg=={NEW}" in line and f":{python.parent.parent}" in line
        assert f"4 nodes ({', '.join(workers[:3])} +1 more)" in line  # the table shows three
        assert plan.stdout.splitlines()[-1].startswith("would ship 3 unit(s)")
        assert client.run(TASKS.importable, "instpkg") == dict.fromkeys(workers, False)
        assert client.run(TASKS.importable, job.name) == dict.fromkeys(workers, False)  # no code

        done = _shipit(nodes, job, client_site, *index, "--json")

        assert done.returncode == 0, done.stdout + done.stderr
        runs = _json(done)["install"]["runs"]
        (run,) = runs  # one environment: one pip run for all four workers
        assert (run["status"], run["installed"]) == ("installed", [f"instpkg-{NEW}"])
        assert sorted(run["nodes"]) == workers and run["ran_on"] in workers
        assert run["prefix"] == str(tmp_path / "shared")
        # pip's own word: it installed once, in all the output shipit kept.
        assert sum(r["output"].count("Successfully installed") for r in runs) == 1
        assert [_on(client, w, TASKS.instpkg_version).result() for w in workers] == [NEW] * 4


@pytest.mark.cluster
def test_a_mismatched_version_is_replaced_and_only_the_worker_that_loaded_it_restarts(
    tmp_path: Path, nodes: Nodes, built: dict[str, Path], job: Project, client_site: Path
) -> None:
    python = nodes.venv("old", tmp_path / "old")
    with _start(nodes, (python, True), (python, True)) as client:
        loaded, idle = sorted(client.scheduler_info()["workers"])
        assert _on(client, loaded, TASKS.instpkg_version).result() == OLD
        pids = client.run(os.getpid)

        done = _shipit(nodes, job, client_site, "--no-index", "--find-links", built["index"],
                       "--restart")  # fmt: skip

        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert any(line.startswith("installed  instpkg==2.0.0") for line in lines), done.stdout
        assert f"restarted  {loaded}  (instpkg {NEW} installed, {OLD} loaded)" in lines
        assert not any(idle in line for line in lines if line.startswith("restart"))
        client.wait_for_workers(2, timeout=30)
        now = client.run(os.getpid)
        assert now[idle] == pids[idle]  # untouched
        assert loaded not in now and pids[loaded] not in now.values()  # a new process
        assert {_on(client, w, TASKS.instpkg_version).result() for w in now} == {NEW}


@pytest.mark.cluster
def test_without_restart_the_report_names_stale_workers_and_a_worker_without_nanny_is_kept(
    tmp_path: Path, nodes: Nodes, built: dict[str, Path], job: Project, client_site: Path
) -> None:
    python = nodes.venv("old", tmp_path / "old")
    with _start(nodes, (python, True), (python, False)) as client:
        workers = sorted(client.scheduler_info()["workers"])
        nannies = {a for a, w in client.scheduler_info()["workers"].items() if w.get("nanny")}
        (with_nanny,), (bare,) = sorted(nannies), sorted(set(workers) - nannies)
        assert [_on(client, w, TASKS.instpkg_version).result() for w in workers] == [OLD, OLD]
        index = ("--no-index", "--find-links", built["index"])

        done = _shipit(nodes, job, client_site, *index)

        assert done.returncode == 0, done.stdout + done.stderr
        for worker in workers:
            assert f"restart    {worker} to load it (instpkg {NEW} installed, {OLD} loaded)" in (
                done.stdout
            )
        assert "2 workers need a restart" in done.stdout.splitlines()[-1]
        assert [_on(client, w, TASKS.instpkg_version).result() for w in workers] == [OLD, OLD]

        again = _shipit(nodes, job, client_site, *index, "--restart", "--json")

        assert again.returncode == 1, again.stdout + again.stderr
        report = _json(again)["install"]
        assert report["runs"] == []  # installed already: no pip
        statuses = {r["worker"]: r["status"] for r in report["restarts"]}
        assert statuses == {with_nanny: "restarted", bare: "no nanny"}
        assert bare in client.scheduler_info()["workers"]  # not shut down, not waited for
        assert _on(client, bare, TASKS.instpkg_version).result() == OLD


@pytest.mark.cluster
def test_a_failing_install_names_pip_error_and_the_other_environment_still_installs(
    tmp_path: Path,
    nodes: Nodes,
    built: dict[str, Path],
    job: Project,
    client_site: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job.write("ghost.py", "import ghostpkg\n")
    lacks_instpkg = nodes.venv("ghost", tmp_path / "a")  # has ghostpkg 3.0.0
    lacks_ghost = nodes.venv("new", tmp_path / "b")  # the index folder has no ghostpkg at all
    with _start(nodes, (lacks_instpkg, True), (lacks_ghost, True)) as client:
        by_prefix = {Path(p): w for w, p in client.run(TASKS.prefix).items()}
        good, bad = by_prefix[tmp_path / "a"], by_prefix[tmp_path / "b"]

        done = _shipit(nodes, job, client_site, "--no-index", "--find-links", built["index"])

        assert done.returncode == 1, done.stdout + done.stderr
        (failed,) = [line for line in done.stderr.splitlines() if line.startswith("failed")]
        assert f"ghostpkg=={GHOST}  on " in failed and bad in failed
        assert f"No matching distribution found for ghostpkg=={GHOST}" in failed
        assert "Traceback" not in done.stderr
        assert any(
            line.startswith(f"installed  instpkg=={NEW}") and good in line
            for line in done.stdout.splitlines()
        ), done.stdout
        assert _on(client, good, TASKS.instpkg_version).result() == NEW
        assert _on(client, bad, TASKS.instpkg_version).result() == NEW  # still serves tasks

        monkeypatch.syspath_prepend(str(client_site))  # the same, from Python: now it raises
        with pytest.raises(shipit.InstallFailed, match=f"found for ghostpkg=={GHOST}") as info:
            shipit.install(client, job.root, no_index=True, find_links=[str(built["index"])])
        (run,) = info.value.report.runs  # the other environment is up to date: no pip there
        assert (run.status, run.nodes) == ("failed", (bad,))


@pytest.mark.cluster
def test_a_pip_that_hangs_on_one_environment_is_cut_off_and_the_other_installs(
    tmp_path: Path, nodes: Nodes, built: dict[str, Path], job: Project, client_site: Path
) -> None:
    ok_env = nodes.venv("old", tmp_path / "a")
    hangs = nodes.venv("old", tmp_path / "b")
    site = subprocess.check_output(
        [hangs, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    )
    # pip in this environment never finishes (a stuck index, a lock on a network disk...).
    Path(site.strip(), "hang.pth").write_text(
        "import sys, time; 'pip' in sys.orig_argv[1:3] and time.sleep(3600)\n"
    )
    with _start(nodes, (ok_env, True), (hangs, True)) as client:
        by_prefix = {Path(p): w for w, p in client.run(TASKS.prefix).items()}
        good, bad = by_prefix[tmp_path / "a"], by_prefix[tmp_path / "b"]
        started = time.monotonic()
        done = _shipit(nodes, job, client_site, "--no-index", "--find-links", built["index"],
                       "--pip-timeout", "5")  # fmt: skip
        took = time.monotonic() - started

        assert done.returncode == 1, done.stdout + done.stderr
        assert took < 60
        (failed,) = [line for line in done.stderr.splitlines() if line.startswith("failed")]
        assert bad in failed and "pip did not finish within 5 s" in failed, failed
        assert "Traceback" not in done.stderr
        assert _on(client, good, TASKS.instpkg_version).result() == NEW
        assert _on(client, bad, TASKS.instpkg_version).result() == OLD  # alive, still serving


@pytest.mark.cluster
def test_wheels_from_client_install_on_a_worker_whose_pip_gets_no_index(
    tmp_path: Path, nodes: Nodes, built: dict[str, Path], job: Project, client_site: Path
) -> None:
    python = nodes.venv("empty", tmp_path / "offline")
    with _start(nodes, (python, True)) as client:
        (worker,) = client.scheduler_info()["workers"]

        done = _shipit(nodes, job, client_site, "--wheels-from-client", "--no-index",
                       "--find-links", built["index"], "--json")  # fmt: skip

        assert done.returncode == 0, done.stdout + done.stderr
        (run,) = _json(done)["install"]["runs"]
        assert run["wheels"] == [f"instpkg-{NEW}-py3-none-any.whl"]
        assert run["options"][:2] == ["--no-index", "--find-links"]
        assert len(run["options"]) == 3 and "shipit-wheels-" in run["options"][2]
        assert str(built["index"]) not in json.dumps(run)  # the worker never saw that folder
        assert _on(client, worker, TASKS.instpkg_version).result() == NEW


@pytest.mark.cluster
def test_a_path_dependency_is_built_into_a_wheel_and_installed(
    tmp_path: Path, nodes: Nodes, built: dict[str, Path], job: Project, client_site: Path
) -> None:
    url = built["locallib"].as_uri()
    job.write("pyproject.toml", f'[project]\nname = "job"\nversion = "0"\n'
              f'dependencies = ["locallib @ {url}"]\n')  # fmt: skip
    python = nodes.venv("empty", tmp_path / "worker")
    with _start(nodes, (python, True)) as client:
        (worker,) = client.scheduler_info()["workers"]

        done = _shipit(nodes, job, client_site, "--no-index", "--find-links", built["index"],
                       "--json")  # fmt: skip

        assert done.returncode == 0, done.stdout + done.stderr
        (run,) = _json(done)["install"]["runs"]
        assert f"locallib=={LOCAL}" in run["requirements"]
        assert f"locallib-{LOCAL}-py3-none-any.whl" in run["wheels"]
        assert _on(client, worker, TASKS.locallib_version).result() == f"{LOCAL} {LOCAL}"


def test_the_environment_names_this_python_and_only_wheel_tags_it_accepts() -> None:
    from packaging import tags

    env = installer.environment()

    assert (env["prefix"], env["executable"]) == (sys.prefix, sys.executable)
    assert env["python"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert env["key"] == installer.environment()["key"]  # stable: workers group by it
    supported = list(tags.sys_tags())
    assert env["implementation"] == supported[0].interpreter[:2]
    assert set(env["abis"]) <= {t.abi for t in supported}
    assert [*env["platforms"], "any"] == list(dict.fromkeys(t.platform for t in supported))


def test_pip_waits_for_its_environment_lock_and_gives_up_in_time() -> None:
    key = installer.environment()["key"]
    lock = Path(tempfile.gettempdir(), f"shipit-pip-{key}.lock")
    with installer._locked(str(lock), 5):  # another pip runs in this environment
        started = time.monotonic()
        result = installer._install(["instpkg==2.0.0"], ["--no-index"], {}, 0.5)
    assert time.monotonic() - started < 3
    assert result["ok"] is False
    assert result["error"] == f"another pip held {lock} for 0.5 s"


@pytest.mark.cluster
def test_a_bad_pip_option_is_one_line_before_anything_is_sent(project: Project) -> None:
    command = [sys.executable, "-m", "shipit", "sync", str(project.root)]
    command += ["--scheduler", "tcp://127.0.0.1:9", "--index-url=--trusted-host=evil"]

    done = subprocess.run(command, capture_output=True, text=True, env=_clean_environ())

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "ERROR --index-url '--trusted-host=evil': not a URL or a path"
    ]


OPTIONAL_JOB = """
import needdep

try:
    import optdep
except ImportError:  # runs without it
    optdep = None


def run(_=None):
    return needdep.version(), optdep is None
"""


@pytest.mark.cluster
def test_an_optional_import_is_never_installed_and_never_blocks_the_required_one(
    tmp_path: Path, nodes: Nodes, built: dict[str, Path], project: Project, client_site: Path
) -> None:
    """The client has needdep and optdep; the workers' wheel folder holds only needdep."""
    project.write("job.py", OPTIONAL_JOB)
    python = nodes.venv("empty", tmp_path / "workers")
    with _start(nodes, (python, True), (python, True)) as client:
        workers = sorted(client.scheduler_info()["workers"])
        wheels = ("--no-index", "--find-links", built["needdep"])

        plan = _shipit(nodes, project, client_site, "--dry-run", *wheels)
        done = _shipit(nodes, project, client_site, *wheels, "--json")
        check = _shipit(nodes, project, client_site, "--all", command="check")

        assert plan.returncode == 0, plan.stdout + plan.stderr
        would = [line for line in plan.stdout.splitlines() if line.startswith("would install")]
        assert len(would) == 2  # the workers' venv and the scheduler's
        assert all(f"needdep=={NEED}" in line and "optdep" not in line for line in would)
        assert any(
            line.startswith("skipped    optdep: optional (its imports are guarded), not on ")
            for line in plan.stdout.splitlines()
        ), plan.stdout
        assert done.returncode == 0, done.stdout + done.stderr
        runs = _json(done)["install"]["runs"]
        assert [(r["requirements"], r["installed"]) for r in runs] == [
            ([f"needdep=={NEED}"], [f"needdep-{NEED}"])
        ] * 2
        results = [_on(client, w, TASKS.run_of, "job").result() for w in workers]
        assert results == [(NEED, True)] * 2  # needdep's value; optdep absent, the code runs
        assert check.returncode == 0, check.stdout + check.stderr
        (row,) = [line for line in check.stdout.splitlines() if line.startswith("optdep ")]
        assert row.split()[:5] == ["optdep", "(optional)", OPT, "missing", "2"], row
        assert row.split()[-1] == "ok"


@pytest.mark.cluster
def test_a_required_package_pip_cannot_get_is_named_and_the_one_it_can_is_installed(
    tmp_path: Path, nodes: Nodes, built: dict[str, Path], project: Project, client_site: Path
) -> None:
    project.write("job.py", "import needdep\nimport optdep  # required here: not guarded\n")
    python = nodes.venv("empty", tmp_path / "workers")
    with _start(nodes, (python, True)) as client:
        (worker,) = client.scheduler_info()["workers"]

        done = _shipit(nodes, project, client_site, "--no-index", "--find-links", built["needdep"])

        assert done.returncode == 1, done.stdout + done.stderr
        failed = [line for line in done.stderr.splitlines() if line.startswith("failed ")]
        assert len(failed) == 2, done.stderr  # the worker's venv and the scheduler's
        for line in failed:
            assert line.startswith(f"failed     optdep=={OPT}  on "), line
            assert f"No matching distribution found for optdep=={OPT}" in line
            assert line.endswith(f"installed the others: needdep-{NEED}")
        assert _on(client, worker, TASKS.importable, "needdep").result() is True
        assert _on(client, worker, TASKS.importable, "optdep").result() is False


# --------------------------------------------------------------------------------------------
# Packages in the live loop (issue 15): watch installs, workers that join install too


def _lines(events: Any, text: str, n: int = 1, since: int = 0, timeout: float = 240) -> list[str]:
    """Wait until ``n`` watch events since ``since`` read ``text``; their lines."""
    deadline = time.monotonic() + timeout
    while True:
        found = [str(e) for e in events.seen[since:] if text in str(e)]
        if len(found) >= n:
            return found
        assert time.monotonic() < deadline, f"{n} x {text!r}: {[str(e) for e in events.seen]}"
        time.sleep(0.05)


def _value_on(client: Client, worker: str, module: str) -> Any:
    try:
        return _on(client, worker, TASKS.run_of, module).result(timeout=60)
    except Exception as e:  # not there yet: the install is under way
        return f"{type(e).__name__}: {e}"


class _Counted:
    """Counts the installs a watch runs (the real Installer, counted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from shipit.install import live

        self.runs = 0
        real = live.Installer.run

        def run(installer: Any, **kwargs: Any) -> Any:
            self.runs += 1
            return real(installer, **kwargs)

        monkeypatch.setattr(live.Installer, "run", run)


@pytest.mark.cluster
def test_watch_installs_what_a_saved_import_needs_and_a_plain_save_installs_nothing(
    tmp_path: Path,
    nodes: Nodes,
    built: dict[str, Path],
    project: Project,
    client_site: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from .test_watch import Events

    monkeypatch.syspath_prepend(str(client_site))  # the client has needdep and ghostpkg
    project.write("job.py", "def run():\n    return 'no packages'\n")
    python = nodes.venv("empty", tmp_path / "workers")
    installs, events = _Counted(monkeypatch), Events()
    wheels = tmp_path / "wheels"
    shutil.copytree(built["needdep"], wheels)
    with _start(nodes, (python, True), (python, True)) as client:
        workers = sorted(client.scheduler_info()["workers"])
        with shipit.watch(
            client, project.root, on_event=events, no_index=True, find_links=[str(wheels)]
        ):
            wait_until(lambda: installs.runs == 1, 240, "the first sync's install check")
            assert [_value_on(client, w, "job") for w in workers] == ["no packages"] * 2
            since = events.mark()

            project.write(
                "job.py", "import needdep\n\n\ndef run():\n    return needdep.version()\n"
            )

            # The code ships at once; the install follows, in the workers' venv and the
            # scheduler's, pinned to the client's version.
            lines = _lines(events, f"installed  needdep=={NEED}  on ", n=2, since=since)
            assert any(f":{tmp_path / 'workers'}  2 nodes (" in line for line in lines), lines
            wait_until(lambda: [_value_on(client, w, "job") for w in workers] == [NEED] * 2, 240)
            assert installs.runs == 2

            since = events.mark()
            project.write(
                "job.py", "import needdep\n\n\ndef run():\n    return 'v' + needdep.version()\n"
            )
            events.wait_for("shipped", since)
            wait_until(
                lambda: [_value_on(client, w, "job") for w in workers] == ["v" + NEED] * 2, 240
            )
            # A new requirement: its install runs after any other (they never overlap), so
            # the count says whether the plain save above ran one.
            shutil.copy(next(built["ghost"].glob("*.whl")), wheels)
            project.write(
                "ghost.py", "import ghostpkg\n\n\ndef run():\n    return ghostpkg.version()\n"
            )
            (line,) = _lines(events, f"installed  ghostpkg=={GHOST}  on ", since=since)
            assert f":{tmp_path / 'workers'}  2 nodes (" in line  # the scheduler's venv has it
            assert installs.runs == 3
            assert [_value_on(client, w, "ghost") for w in workers] == [GHOST] * 2
        assert not [e for e in events.seen if e.kind in ("failed", "error")], events.seen


@pytest.mark.cluster
def test_pip_failing_in_one_environment_under_watch_is_named_and_a_later_save_installs_it(
    tmp_path: Path,
    nodes: Nodes,
    built: dict[str, Path],
    project: Project,
    client_site: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from .test_watch import Events

    monkeypatch.syspath_prepend(str(client_site))
    has_ghost = nodes.venv("ghost", tmp_path / "a")  # lacks needdep only
    empty = nodes.venv("empty", tmp_path / "b")  # lacks both; no wheel of ghostpkg anywhere
    wheels = tmp_path / "wheels"
    shutil.copytree(built["needdep"], wheels)
    events = Events()
    with _start(nodes, (has_ghost, True), (empty, True)) as client:
        by_prefix = {Path(p): w for w, p in client.run(TASKS.prefix).items()}
        good, bad = by_prefix[tmp_path / "a"], by_prefix[tmp_path / "b"]
        with shipit.watch(
            client, project.root, on_event=events, no_index=True, find_links=[str(wheels)]
        ):
            since = events.mark()
            project.write(
                "job.py",
                "import ghostpkg\nimport needdep\n\n\n"
                "def run():\n    return ghostpkg.version(), needdep.version()\n",
            )

            (failed,) = _lines(events, f"failed     ghostpkg=={GHOST}  on ", since=since)
            assert (
                bad in failed and f"No matching distribution found for ghostpkg=={GHOST}" in failed
            )
            assert failed.endswith(f"installed the others: needdep-{NEED}"), failed
            _lines(
                events, f"installed  needdep=={NEED}  on {_host()}:{tmp_path / 'a'}", since=since
            )
            assert _value_on(client, good, "job") == (GHOST, NEED)
            assert "No module named 'ghostpkg'" in _value_on(client, bad, "job")
            assert "stopped" not in events.kinds(0)  # the watch goes on

            shutil.copy(next(built["ghost"].glob("*.whl")), wheels)  # the fix: a wheel added
            since = events.mark()
            project.write("{pkg}/sub.py", "VALUE = 2\n")  # any save: the last install failed
            (fixed,) = _lines(events, f"installed  ghostpkg=={GHOST}  on ", since=since)
            assert bad in fixed
            assert _value_on(client, bad, "job") == (GHOST, NEED)


def _host() -> str:
    import socket

    return socket.gethostname()


@pytest.mark.cluster
def test_a_worker_that_joins_installs_what_the_cluster_installed_before_it_is_current(
    tmp_path: Path, nodes: Nodes, built: dict[str, Path], project: Project, client_site: Path
) -> None:
    project.write("job.py", "import needdep\n\n\ndef run():\n    return needdep.version()\n")
    wheels = tmp_path / "wheels"
    shutil.copytree(built["needdep"], wheels)
    first = nodes.venv("empty", tmp_path / "first")
    with _start(nodes, (first, True)) as client:
        done = _shipit(nodes, project, client_site, "--no-index", "--find-links", wheels)
        assert done.returncode == 0, done.stdout + done.stderr

        # A worker in a fresh environment joins: it installs needdep itself, no new sync.
        nodes.worker(nodes.venv("empty", tmp_path / "late"), nanny=True)
        client.wait_for_workers(2, timeout=120)
        late = {Path(p): w for w, p in client.run(TASKS.prefix).items()}[tmp_path / "late"]
        assert _value_on(client, late, "job") == NEED  # its start waited for the install
        check = _shipit(nodes, project, client_site, command="check")
        assert check.returncode == 0, check.stdout + check.stderr

        # One whose install cannot succeed (the wheel folder is gone) is not current: check
        # names it, and a sync once the folder is back installs it.
        shutil.rmtree(wheels)
        nodes.worker(nodes.venv("empty", tmp_path / "later"), nanny=True)
        client.wait_for_workers(3, timeout=120)
        later = {Path(p): w for w, p in client.run(TASKS.prefix).items()}[tmp_path / "later"]
        check = _shipit(nodes, project, client_site, command="check")
        assert check.returncode == 1, check.stdout + check.stderr
        (row,) = [
            line for line in check.stdout.splitlines() if line.startswith("packages (joined)")
        ]
        assert f"needdep=={NEED}" in row, check.stdout
        assert f"1 worker ({later}) could not install on joining: " in check.stdout
        assert "No module named 'needdep'" in _value_on(client, later, "job")
        status = _shipit(nodes, project, client_site, command="status")
        rows = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
        assert " 1/1 " in rows[late] and f" 0/1 (failed needdep=={NEED}) " in rows[later], (
            status.stdout
        )

        shutil.copytree(built["needdep"], wheels)
        done = _shipit(nodes, project, client_site, "--no-index", "--find-links", wheels)
        assert done.returncode == 0, done.stdout + done.stderr
        assert _value_on(client, later, "job") == NEED
        check = _shipit(nodes, project, client_site, command="check")
        assert check.returncode == 0, check.stdout + check.stderr
