"""What the tests share besides fixtures: real projects on disk, real clusters on loopback,
and the ``shipit`` command run as a user runs it. Nothing here is a mock."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pty
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import Client

REPO = Path(__file__).resolve().parents[1]


def shipit(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    return subprocess.run(
        [sys.executable, "-m", "shipit", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=timeout,
        cwd=cwd,
    )


def cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``shipit *args`` in this process, through click's ``CliRunner``: what :func:`shipit`
    returns, without starting an interpreter. For tests of what the command says and exits
    with; the process boundary itself (signals, a terminal, logging to stderr) keeps
    :func:`shipit`. An exception that escapes the command fails the test with its traceback.
    """
    import dask.config
    from click.testing import CliRunner

    from shipit.cli import main

    # main() declares that this process runs no user code: not true of the test process.
    switch = dask.config.get("shipit.switch-modules", None)
    before = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        result = CliRunner().invoke(
            main,
            list(args),
            env={"DASK_SCHEDULER_ADDRESS": None, **(env or {})},
            catch_exceptions=False,
        )
    finally:
        os.chdir(before)
        if switch is None:
            dask.config.config.get("shipit", {}).pop("switch-modules", None)
        else:
            dask.config.set({"shipit.switch-modules": switch})
    return subprocess.CompletedProcess(
        ["shipit", *args], result.exit_code, result.stdout, result.stderr
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        return importlib.import_module(dotted.format(pkg=self.name))


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
        """End every node at once: a test's teardown needs no graceful shutdown (a worker
        whose scheduler is gone spends seconds retrying it), and the host store cleans up
        after dead nodes by design."""
        self.stop_all()
