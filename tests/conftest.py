"""Real projects on disk and real Dask clusters on loopback: nothing here is a mock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import time
import uuid
import venv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster

from .nodeenvs import node_python  # noqa: F401  (a fixture: node venvs on other Python minors)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def syntax_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The syntax cache of this test run, not the user's; subprocesses (the CLI) inherit it."""
    folder = tmp_path_factory.mktemp("syntax-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHIPIT_CACHE_DIR", str(folder))
        yield folder


def dist_project(folder: Path, name: str, version: str, init: str | None = None) -> Path:
    """A tiny distributable project (setuptools) for tests to build into a wheel."""
    module = folder / name.replace("-", "_")
    module.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "{version}"
    """))  # fmt: skip
    if init is None:
        init = f'__version__ = "{version}"\n\n\ndef version(_=None):\n    return __version__\n'
    (module / "__init__.py").write_text(init)
    return folder


def on_a_terminal(args: list[str], cwd: Path | None = None) -> tuple[int, bytes, bytes]:
    """Run ``python -m shipit *args`` with stderr on a real pseudo-terminal and stdout in a
    pipe; return the exit code, stdout, and everything the terminal showed."""
    import contextlib
    import pty

    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    with os.fdopen(controller, "rb", buffering=0) as screen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipit", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=env,
        )
        os.close(terminal)
        out, _ = proc.communicate(timeout=60)
        shown = b""
        with contextlib.suppress(OSError):  # EIO once the process closed its end
            while chunk := screen.read(4096):
                shown += chunk
    return proc.returncode, out, shown


@dataclass
class Project:
    """A user's project folder: one package named ``name`` (unique per test) and a module."""

    root: Path
    name: str

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel.format(pkg=self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip().format(pkg=self.name))
        return path

    def remove(self, rel: str) -> None:
        (self.root / rel.format(pkg=self.name)).unlink()

    def module(self, dotted: str) -> Any:
        """Import ``{pkg}.x`` on the client, as the user's script would."""
        import importlib

        return importlib.import_module(dotted.format(pkg=self.name))


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


@dataclass
class Cluster:
    """A connected client and a way to add a worker, whatever kind of cluster is behind it."""

    kind: str
    client: Client
    add_worker: Callable[[], None]
    scheduler_address: str
    in_process_scheduler: bool

    @property
    def workers(self) -> list[str]:
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def on_every_worker(
        self, func: Callable[..., Any], *args: Any, per_worker: int = 4
    ) -> list[Any]:
        """Run ``func`` as real tasks, ``per_worker`` of them pinned to each worker."""
        futures = [
            self.client.submit(func, *args, pure=False, workers=[w], allow_other_workers=False)
            for w in self.workers
            for _ in range(per_worker)
        ]
        return self.client.gather(futures)


@pytest.fixture
def local_cluster() -> Iterator[Cluster]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as lc,
        Client(lc) as client,
    ):

        def add_worker() -> None:
            n = len(lc.workers) + 1
            lc.scale(n)
            client.wait_for_workers(n, timeout=60)

        yield Cluster("local", client, add_worker, lc.scheduler_address, in_process_scheduler=True)


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


@dataclass
class ProcessCluster:
    """``dask scheduler`` and ``dask worker`` as real processes on loopback."""

    python: Path
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def scheduler_file(self) -> Path:
        return self.workdir / "scheduler.json"

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"node-{len(self.procs)}.log", "wb")  # noqa: SIM115
        env = {
            k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DASK_SCHEDULER_ADDRESS")
        }
        proc = subprocess.Popen(
            [str(self.python), "-m", *args], cwd=self.workdir, stdout=log, stderr=log, env=env
        )
        self.procs.append(proc)
        return proc

    def start_scheduler(self, port: int = 0) -> str:
        self.scheduler_file.unlink(missing_ok=True)
        self._spawn(
            "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
            "--no-dashboard", "--scheduler-file", str(self.scheduler_file),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.scheduler_file.exists():
                try:
                    return json.loads(self.scheduler_file.read_text())["address"]
                except (ValueError, KeyError):
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"scheduler did not start; see {self.workdir}")

    def start_worker(self) -> None:
        self._spawn(
            "distributed.cli.dask_worker", "--scheduler-file", str(self.scheduler_file),
            "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
        )  # fmt: skip

    def stop_all(self) -> None:
        """Kill every node, as a crash or a reboot would."""
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()
        self.procs.clear()

    def close(self) -> None:
        # Workers first: a worker whose scheduler is gone spends seconds retrying it.
        for proc in [*self.procs[1:], *self.procs[:1]]:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


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
