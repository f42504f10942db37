"""Install one missing package on workers that share one venv: shipit.install against PipInstall.

    .venv/bin/python benchmarks/bench_install.py [--repeat 5] [--workers 4]

Target: shipit at least 3x faster than ``distributed.diagnostics.plugin.PipInstall`` (medians).

The nodes are real ``dask scheduler`` and ``dask worker`` processes (with nannies), all started
from one venv made here as tests/test_install.py makes them: its own site-packages first, then,
through a .pth, this environment's, for Dask and pip. The package is a tiny wheel built here with
``build``; pip on the nodes gets ``--no-index --find-links DIR`` and none of this machine's pip
configuration (PIP_* variables are dropped). Each repetition removes the package from the venv
with ``pip uninstall``, checks that every node lacks it, times one mechanism, checks that every
worker imports it, then does the same for the other mechanism; the order alternates. The same
processes serve every run: nothing restarts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import Client
from distributed.diagnostics.plugin import PipInstall

import shipit

PACKAGE, MODULE, VERSION = "shipit-bench-pkg", "shipit_bench_pkg", "1.0.0"
TARGET = 3.0
# What distributed logs at INFO in _PipInstaller.__call__, once per pip run, on any node.
PIP_LOG_LINE = "pip installing the following packages"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without pip's configuration (this machine sets PIP_FIND_LINKS)."""
    drop = ("PYTHONPATH", "DASK_SCHEDULER_ADDRESS")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in drop}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def run(*args: str | Path) -> None:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=clean_env())
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}")


def build_wheel(root: Path) -> Path:
    """A folder holding the package's wheel, built with ``build``."""
    src = root / "src"
    (src / MODULE).mkdir(parents=True)
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{PACKAGE}"
        version = "{VERSION}"
    """))  # fmt: skip
    (src / MODULE / "__init__.py").write_text(f'__version__ = "{VERSION}"\n')
    wheels = root / "wheels"
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", wheels, src)
    return wheels


def node_venv(folder: Path) -> Path:
    """A venv that sees this environment's packages (Dask, pip) after its own."""
    venv.create(folder, with_pip=False, symlinks=True)
    python = folder / "bin" / "python"
    site = subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    )
    Path(site.strip(), "dask-stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def project(root: Path, wheels: Path) -> Path:
    """The user's project (a job that imports the package), and the package on the client."""
    site = root / "client-site"
    run(sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels,
        "--target", site, f"{PACKAGE}=={VERSION}")  # fmt: skip
    sys.path.insert(0, str(site))
    folder = root / "project"
    folder.mkdir()
    (folder / "job.py").write_text(f"import {MODULE}\n\n\ndef run():\n    return {MODULE}\n")
    return folder


@dataclass
class Nodes:
    """A scheduler and workers as processes of one venv; each in its own session, so that
    closing kills a nanny's worker too."""

    python: Path
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, *args: str) -> None:
        log = open(self.workdir / f"node-{len(self.procs)}.log", "wb")  # noqa: SIM115
        # Temporary files (shipit's pip lock, pip's own, dask-scratch-space) stay in workdir.
        env = clean_env(TMPDIR=str(self.workdir / "tmp"))
        command = [str(self.python), "-m", *args]
        self.procs.append(
            subprocess.Popen(
                command, cwd=self.workdir, stdout=log, stderr=log, env=env, start_new_session=True
            )
        )
        log.close()

    def start(self, workers: int) -> str:
        (self.workdir / "tmp").mkdir()
        scheduler_file = self.workdir / "scheduler.json"
        self.spawn(
            "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
            "--no-dashboard", "--scheduler-file", str(scheduler_file),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while (address := _address(scheduler_file)) is None:
            if time.monotonic() > deadline or self.procs[0].poll() is not None:
                raise RuntimeError(f"the scheduler did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        for _ in range(workers):  # all at once
            self.spawn(
                "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
            )  # fmt: skip
        return address

    def pip_runs_logged(self) -> int:
        """How many times PipInstall started pip on any node, as the nodes' logs say."""
        return sum(log.read_text(errors="replace").count(PIP_LOG_LINE) for log in self.logs())

    def logs(self) -> list[Path]:
        return sorted(self.workdir.glob("node-*.log"))

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(
            f"{p.name}:\n{p.read_text(errors='replace')[-chars:]}" for p in self.logs()
        )

    def close(self) -> None:
        # Workers first: a worker whose scheduler is gone spends seconds retrying it.
        for group in (self.procs[1:], self.procs[:1]):
            for proc in group:
                proc.terminate()  # the nanny closes its worker
            for proc in group:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                with contextlib.suppress(ProcessLookupError):  # a nanny's orphaned worker
                    os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()


def _address(scheduler_file: Path) -> str | None:
    """The scheduler's address, once it has written the whole file."""
    try:
        return str(json.loads(scheduler_file.read_text())["address"])
    except (OSError, ValueError, KeyError):
        return None


# What runs on the nodes. Defined in __main__, cloudpickle sends them by value.
def lacks(name: str) -> bool:
    import importlib
    import importlib.metadata
    import importlib.util
    import sys

    importlib.invalidate_caches()
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return importlib.util.find_spec(name) is None
    return False


def imported_version(name: str) -> str:
    """Import the package fresh, say its version, and forget it again for the next run."""
    import importlib
    import sys

    importlib.invalidate_caches()
    try:
        return str(importlib.import_module(name).__version__)
    finally:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


def worker_plugins(dask_scheduler: Any) -> list[str]:
    return sorted(dask_scheduler.worker_plugins)


class Bench:
    def __init__(self, client: Client, nodes: Nodes, folder: Path, wheels: Path) -> None:
        self.client, self.nodes, self.folder, self.wheels = client, nodes, folder, wheels
        self.workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        self.times: dict[str, list[float]] = {"shipit": [], "PipInstall": []}
        self.pip_runs: dict[str, list[int]] = {"shipit": [], "PipInstall": []}
        self.pip_seconds: list[float] = []  # shipit's one pip run, as the node timed it
        self.left_behind: list[str] = []

    def uninstall(self) -> None:
        run(self.nodes.python, "-m", "pip", "uninstall", "-y", "-q", PACKAGE)
        seen = self.client.run(lacks, MODULE)
        seen["scheduler"] = self.client.run_on_scheduler(lacks, MODULE)
        if not all(seen.values()):
            raise RuntimeError(f"{PACKAGE} is still visible after pip uninstall: {seen}")

    def check_installed(self, how: str) -> None:
        futures = [
            self.client.submit(
                imported_version, MODULE, workers=[w], allow_other_workers=False, pure=False
            )
            for w in self.workers
        ]
        versions = self.client.gather(futures)
        if versions != [VERSION] * len(self.workers):
            raise RuntimeError(f"after {how}, workers import {versions}, not {VERSION}")

    def shipit(self) -> float:
        started = time.perf_counter()
        report = shipit.install(self.client, self.folder, find_links=[str(self.wheels)],
                                no_index=True)  # fmt: skip
        seconds = time.perf_counter() - started
        (one,) = report.runs  # one environment: one pip run
        assert one.status == "installed" and len(one.nodes) == len(self.workers) + 1, one
        assert one.output.count("Successfully installed") == 1, one.output
        self.pip_runs["shipit"].append(len(report.runs))
        self.pip_seconds.append(one.seconds)
        return seconds

    def pipinstall(self, repetition: int) -> float:
        before = self.nodes.pip_runs_logged()
        plugin = PipInstall(
            packages=[f"{PACKAGE}=={VERSION}"],
            pip_options=["--no-index", "--find-links", str(self.wheels)],
        )
        name = f"bench-pipinstall-{repetition}"
        started = time.perf_counter()
        self.client.register_plugin(plugin, name=name)
        seconds = time.perf_counter() - started
        # Removing the scheduler plugin does not call its close(): the worker plugin it
        # registered stays, and would run pip on every worker that joins later.
        self.client.unregister_scheduler_plugin(name)
        self.left_behind += [p for p in self.client.run_on_scheduler(worker_plugins)
                             if p == plugin.name]  # fmt: skip
        with contextlib.suppress(ValueError):
            self.client.unregister_worker_plugin(plugin.name)
        self.pip_runs["PipInstall"].append(self.nodes.pip_runs_logged() - before)
        return seconds

    def repetition(self, i: int) -> None:
        order = ("shipit", "PipInstall") if i % 2 == 0 else ("PipInstall", "shipit")
        for how in order:
            self.uninstall()
            seconds = self.shipit() if how == "shipit" else self.pipinstall(i)
            self.check_installed(how)
            self.times[how].append(seconds)


def report(bench: Bench, repeat: int) -> None:
    s, p = bench.times["shipit"], bench.times["PipInstall"]
    print(f"{'rep':>6}  {'shipit':>8}  {'(its pip)':>9}  {'PipInstall':>10}  {'ratio':>6}")
    for i, (a, pip, b) in enumerate(zip(s, bench.pip_seconds, p, strict=True), start=1):
        print(f"{i:>6}  {a:>6.2f} s  {pip:>7.2f} s  {b:>8.2f} s  {b / a:>5.1f}x")
    ms, mp = statistics.median(s), statistics.median(p)
    mpip, ratio = statistics.median(bench.pip_seconds), mp / ms
    print(f"{'median':>6}  {ms:>6.2f} s  {mpip:>7.2f} s  {mp:>8.2f} s  {ratio:>5.1f}x")
    n = len(bench.workers)
    runs_s, runs_p = statistics.median(bench.pip_runs["shipit"]), max(bench.pip_runs["PipInstall"])
    print(
        f"\npip runs per install: shipit {runs_s:g} for one environment ({n} workers and the"
        f"\nscheduler), PipInstall {runs_p} (counted in the nodes' logs)."
        "\nPipInstall runs pip on the scheduler, inside its event loop, then on every worker"
        "\ninside plugin setup, one worker at a time per hostname (a distributed Semaphore),"
        "\nblocking each worker's event loop; no timeout; restart_workers=False (the default)."
    )
    if bench.left_behind:
        print(
            "unregister_scheduler_plugin left PipInstall's worker plugin registered"
            f" {len(bench.left_behind)}/{repeat} times\n(it does not call the plugin's close());"
            " removed here with unregister_worker_plugin."
        )
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(
        f"\ntarget {verdict}: PipInstall/shipit = {ratio:.1f}x (median of {repeat}; "
        f"target >= {TARGET:g}x), {n} workers sharing one venv"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per mechanism")
    parser.add_argument("--workers", type=int, default=4, help="worker processes, one venv")
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        root = Path(tmp)
        (root / "nodes").mkdir()
        wheels = build_wheel(root)
        folder = project(root, wheels)
        nodes = Nodes(node_venv(root / "venv"), root / "nodes")
        try:
            address = nodes.start(args.workers)
            with Client(address, timeout=30) as client:
                try:
                    client.wait_for_workers(args.workers, timeout=120)
                except TimeoutError:
                    raise RuntimeError(f"workers did not join:\n{nodes.log_tail()}") from None
                one, five, _ = os.getloadavg()
                print(
                    f"install {PACKAGE}=={VERSION} (--no-index --find-links DIR) on "
                    f"{args.workers} workers and the scheduler, one venv, {args.repeat} reps"
                    f"\nload avg {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} "
                    "cores\n"
                )
                bench = Bench(client, nodes, folder, wheels)
                for i in range(args.repeat):
                    bench.repetition(i)
        finally:
            nodes.close()
    report(bench, args.repeat)


if __name__ == "__main__":
    main()
