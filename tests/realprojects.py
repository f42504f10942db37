"""shipit on real projects from the package index, against a real mixed cluster.

Not part of the test run: it downloads. Run it before calling a discovery, node-side or reload
change done, on projects nobody here wrote::

    .venv/bin/python tests/realprojects.py                   # every project below
    .venv/bin/python tests/realprojects.py certifi rich      # some of them
    .venv/bin/python tests/realprojects.py --keep /tmp/real  # keep the folders and logs

For each project: ``pip download --no-deps --no-binary :all:`` its sdist, unpack it, install it
editable in a client venv (as its developer would; the venv also sees this checkout's dask and
shipit), build its own wheel with its own backend, and start a cluster on loopback: a
``dask scheduler`` and two workers (one behind a nanny) in bare venvs of the client's Python
that have dask but none of the project's dependencies, and a nanny worker on another Python
minor. Then, as a user would, from the project's root:

1. ``shipit sync --dry-run --json``: the files that would ship, compared with the wheel's.
2. ``shipit sync``: exit code and lines; the other-Python worker must be named, not crash.
3. On every same-Python worker, a task imports the project and runs a smoke expression: the
   value must equal the client's.
4. An edit to the package's ``__init__.py`` and ``shipit sync`` again: every worker returns the
   new value (time from the start of the sync to all fresh).
5. ``client.restart()``, then ``shipit sync`` from a new process: same exit, workers fresh.
6. ``shipit check --json``: a ``python`` row naming the other-Python worker, exit 1.
7. Every worker still connected, and no crash in any log.

It prints one block per project and a summary table, and exits 1 when any step failed. The
differences from the wheel are reported, not failed on (what ships beyond or short of the
wheel is the subject of issue 12); every other step is a failure when it does not hold.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distributed import Client

from tests.nodeenvs import CRASH_MARKS, NodeCluster, make_node_python, wait_until

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shipit-realprojects"
OTHER_MINOR = "3.12"


@dataclass(frozen=True)
class Real:
    """A project from the index: what to download, which package to edit, what to run."""

    requirement: str  # for pip download
    package: str  # the import package whose __init__.py the edit touches
    smoke: str  # statements run on the client and on workers; they set ``out``
    config: str = ""  # appended to its pyproject.toml, as its user would after shipit's tip


PROJECTS = {
    "certifi": Real(
        "certifi==2025.8.3", "certifi",
        "import certifi, os\nout = [certifi.__version__, os.path.isfile(certifi.where())]",
    ),
    "rich": Real(
        "rich==14.1.0", "rich",
        "import io, importlib.metadata\nfrom rich.console import Console\n"
        "c = Console(file=io.StringIO(), width=30, color_system=None)\n"
        "c.print('[bold]shipit[/] ok', {'a': 1})\n"
        "out = [c.file.getvalue(), importlib.metadata.version('rich')]",
    ),
    "sympy": Real(
        "sympy==1.14.0", "sympy",
        "import sympy\nx = sympy.Symbol('x')\n"
        "out = [str(sympy.expand((x + 1) ** 3)), str(sympy.integrate(sympy.sin(x) ** 2, x)),"
        " sympy.__version__]",
    ),
    "pytest": Real(
        "pytest==8.4.1", "_pytest",
        "import pytest, _pytest\nout = [pytest.__version__, _pytest.__version__]",
    ),
    # Compiled speedups with a pure fallback; markupsafe, alike, is part of Dask's stack.
    "simplejson": Real(
        "simplejson==3.20.1", "simplejson",
        "import simplejson\nout = [simplejson.dumps({'a': [1, 2.5]}),"
        " simplejson._import_c_make_encoder() is not None, simplejson.__version__]",
        # shipit refuses its C speedups as source and names this option: built and installed
        "\n[tool.shipit]\ninstall-project = true\n",
    ),
    "attrs": Real(
        "attrs==25.3.0", "attr",
        "import attrs, importlib.metadata\n"
        "@attrs.define\nclass P:\n    x: int = 1\n"
        "out = [repr(P()), importlib.metadata.version('attrs')]",
    ),
}  # fmt: skip
# Only compared with their wheels (--compare): a spread of backends and layouts.
LAYOUTS = {
    "requests": "requests==2.32.4",  # setuptools, src/
    "idna": "idna==3.10",  # flit
    "six": "six==1.17.0",  # one module
    "tomli": "tomli==2.2.1",  # flit, src/
    "iniconfig": "iniconfig==2.1.0",  # hatch-vcs: a generated _version.py
    "platformdirs": "platformdirs==4.3.8",  # hatch, src/
    "typing-extensions": "typing_extensions==4.14.1",  # flit, one module in src/
    "pyparsing": "pyparsing==3.2.3",  # flit
    "markdown-it-py": "markdown-it-py==3.0.0",  # flit, package data
    "pluggy": "pluggy==1.6.0",  # setuptools-scm, src/
    "google-auth": "google-auth==2.40.3",  # namespace package google/
    "click": "click==8.2.1",  # part of Dask's stack: refused
    "jinja2": "jinja2==3.1.6",  # part of Dask's stack: refused
}


def clean_env(**extra: str) -> dict[str, str]:
    """No PIP_* (the machine's wheel folder), no PYTHONPATH, no scheduler address."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIP_") and k not in ("PYTHONPATH", "DASK_SCHEDULER_ADDRESS")
    }
    return {**keep, "PYTHONFAULTHANDLER": "1", **extra}


def run(
    cmd: list[str], cwd: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout
    )


def sdist(real: Real) -> Path:
    """The sdist of ``real``, downloaded once into the cache."""
    folder = CACHE / real.requirement.replace("==", "-")
    found = [*folder.glob("*.tar.gz"), *folder.glob("*.zip")]
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        got = run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "--dest", str(folder), real.requirement]
        )  # fmt: skip
        if got.returncode:
            raise RuntimeError(f"pip download {real.requirement} failed:\n{got.stderr[-2000:]}")
        found = [*folder.glob("*.tar.gz"), *folder.glob("*.zip")]
    return found[0]


def unpack(archive: Path, into: Path) -> Path:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    else:
        with tarfile.open(archive) as t:
            t.extractall(into, filter="data")
    (root,) = [p for p in into.iterdir() if p.is_dir()]
    return root


def client_venv(folder: Path) -> Path:
    """A venv with pip whose path sees this checkout's dask (and its deps) and shipit."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    import sysconfig

    Path(site.stdout.strip(), "client-site.pth").write_text(
        f"{sysconfig.get_paths()['purelib']}\n{REPO}\n"
    )
    return python


def wheel_files(project: Path, python: Path, out: Path) -> set[str]:
    """The files the project's own wheel holds, without its .dist-info."""
    built = run([str(python), "-m", "build", "--wheel", "--outdir", str(out), str(project)])
    if built.returncode:
        raise RuntimeError(f"its own wheel did not build:\n{built.stderr[-2000:]}")
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        return {n for n in z.namelist() if not n.endswith("/") and not _aside(n)}


def _aside(path: str) -> bool:
    """Left out of the comparison: metadata, data installed outside the package, tests."""
    parts = path.split("/")
    name = parts[-1]
    return (
        parts[0].endswith((".dist-info", ".data"))
        or bool({"tests", "test", "testing"} & set(parts[:-1]))
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
    )


def shipped_files(dry: dict[str, Any]) -> set[str]:
    """The files ``sync --dry-run --json`` would ship, as paths inside the wheel would be."""
    files: set[str] = set()
    for unit in dry["units"]:
        for path in unit.get("files", []):
            if not _aside(path):
                files.add(path)
    return files


def on_worker(client: Client, address: str, code: str) -> Any:
    def smoke(code: str) -> Any:
        import importlib

        importlib.invalidate_caches()
        scope: dict[str, Any] = {}
        exec(code, scope)
        return scope["out"]

    return client.submit(
        smoke, code, workers=[address], pure=False, allow_other_workers=False
    ).result(timeout=300)


@dataclass
class Outcome:
    name: str
    steps: dict[str, str] = field(default_factory=dict)  # step -> "ok" or what went wrong
    notes: list[str] = field(default_factory=list)

    def step(self, name: str, ok: bool, detail: str = "") -> None:
        self.steps[name] = "ok" if ok else (detail or "failed")
        print(f"  {'ok ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)

    @property
    def failed(self) -> bool:
        return any(v != "ok" for v in self.steps.values())


def try_project(name: str, real: Real, work: Path) -> Outcome:
    outcome = Outcome(name)
    print(f"\n== {name} ({real.requirement})", flush=True)
    project = unpack(sdist(real), work / "src")
    if real.config:
        with open(project / "pyproject.toml", "a") as f:
            f.write(real.config)
    python = client_venv(work / "client")
    installed = run([str(python), "-m", "pip", "install", "-q", "-e", str(project)])
    if installed.returncode:
        outcome.step("client install -e", False, installed.stderr.strip().splitlines()[-1])
        return outcome
    run([str(python), "-m", "pip", "install", "-q", "build"])

    def shipit(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run([str(python), "-m", "shipit", *args], cwd=project, timeout=timeout)

    expected = run(
        [str(python), "-c", real.smoke + "\nimport json; print(json.dumps(out))"], cwd=work
    )
    if expected.returncode:
        outcome.step("smoke on the client", False, expected.stderr.strip().splitlines()[-1])
        return outcome
    client_value = json.loads(expected.stdout)
    print(f"  client: {client_value}")

    # 1. what would ship, against what its own wheel holds
    dry = shipit("sync", "--dry-run", "--json")
    if dry.returncode not in (0, 1):
        outcome.step("sync --dry-run --json", False, dry.stderr.strip()[-300:])
        return outcome
    plan = json.loads(dry.stdout)
    with contextlib.suppress(RuntimeError, ValueError):
        wheel = wheel_files(project, python, work / "wheel")
        shipped = shipped_files(plan)
        if shipped:
            missing = sorted(wheel - shipped)
            extra = sorted(shipped - wheel)
            outcome.notes.append(
                f"wheel {len(wheel)} files, shipit {len(shipped)}; not shipped {len(missing)}"
                f" {missing[:6]}; shipped beyond the wheel {len(extra)} {extra[:6]}"
            )
            print(f"  note: {outcome.notes[-1]}")

    nodes = work / "nodes"
    nodes.mkdir()
    same = [
        make_node_python(f"{sys.version_info[0]}.{sys.version_info[1]}", nodes / f"n{i}")
        for i in range(3)
    ]
    other = make_node_python(OTHER_MINOR, nodes / "other")
    with NodeCluster(work / "cluster") as nc:
        (work / "cluster").mkdir()
        address = nc.start_scheduler(same[0].python)
        nc.start_worker("a", same[1].python, True)
        nc.start_worker("b", same[2].python, True)
        nc.start_worker("other", other.python, True)
        with Client(address, timeout=60) as client:
            for w in ("a", "b", "other"):
                nc.wait_for_worker(client, w)
            sync = shipit("sync", "--scheduler", address)
            names_other = "3.12" in sync.stdout + sync.stderr
            outcome.step(
                "sync names the other-Python worker, exit 1",
                sync.returncode == 1 and names_other and "Traceback" not in sync.stderr,
                ""
                if sync.returncode == 1 and names_other
                else f"exit {sync.returncode}: {(sync.stdout + sync.stderr)[-600:]}",
            )
            print("    " + "\n    ".join((sync.stdout + sync.stderr).strip().splitlines()[-8:]))

            def values() -> dict[str, Any]:
                return {
                    w: on_worker(client, nc.wait_for_worker(client, w), real.smoke)
                    for w in ("a", "b")
                }

            try:
                got = values()
                outcome.step(
                    "workers give the client's value",
                    all(v == client_value for v in got.values()),
                    str(got),
                )
            except Exception as e:  # what a task raised on the worker
                outcome.step(
                    "workers give the client's value", False, f"{type(e).__name__}: {e}"[:400]
                )

            # 4. an edit
            inits = [p / real.package / "__init__.py" for p in (project, project / "src")]
            init = next(p for p in inits if p.is_file())
            original = init.read_bytes()
            init.write_bytes(original + b"\nSHIPIT_REAL_EDIT = 'edited-1'\n")
            start = time.perf_counter()
            again = shipit("sync", "--scheduler", address)
            probe = f"import {real.package} as m\nout = getattr(m, 'SHIPIT_REAL_EDIT', None)"
            try:
                fresh = {
                    w: on_worker(client, nc.wait_for_worker(client, w), probe) for w in ("a", "b")
                }
                took = time.perf_counter() - start
                outcome.step(
                    "an edit reaches every worker",
                    set(fresh.values()) == {"edited-1"},
                    f"{fresh}, sync exit {again.returncode}"
                    if set(fresh.values()) != {"edited-1"}
                    else "",
                )
                outcome.notes.append(f"edit: sync + first task on both workers {took:.2f} s")
                print(f"  note: {outcome.notes[-1]}")
            except Exception as e:
                outcome.step(
                    "an edit reaches every worker", False, f"{type(e).__name__}: {e}"[:400]
                )

            # 5. Dask's own restart, then a sync from a new process
            client.restart(timeout=120, wait_for_workers=False)
            for w in ("a", "b", "other"):
                nc.wait_for_worker(client, w)
            after = shipit("sync", "--scheduler", address)
            outcome.step(
                "sync after client.restart(): exit 1 only for the other Python",
                after.returncode == 1 and "still on old" not in after.stdout + after.stderr,
                (after.stdout + after.stderr)[-600:],
            )
            try:
                got = values()
                fresh = {
                    w: on_worker(client, nc.wait_for_worker(client, w), probe) for w in ("a", "b")
                }
                outcome.step(
                    "after the restart: the client's value and the edit",
                    all(v == client_value for v in got.values())
                    and set(fresh.values()) == {"edited-1"},
                    f"{got} {fresh}",
                )
            except Exception as e:
                outcome.step(
                    "after the restart: the client's value and the edit",
                    False,
                    f"{type(e).__name__}: {e}"[:400],
                )

            # 6. check
            check = shipit("check", "--scheduler", address, "--json")
            try:
                report = json.loads(check.stdout)
                text = json.dumps(report)
                outcome.step(
                    "check: a python row naming the other worker, exit 1",
                    check.returncode == 1 and "python" in text and OTHER_MINOR in text,
                    f"exit {check.returncode}: {check.stdout[-400:]}",
                )
            except ValueError:
                outcome.step(
                    "check --json", False, f"exit {check.returncode}: {check.stderr[-400:]}"
                )

            # 7. nothing crashed, everyone connected
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: all(nc.address_of(client, w) for w in ("a", "b", "other")), 30)
            gone = [w for w in ("a", "b", "other") if not nc.address_of(client, w)]
            crashed = [
                n.name
                for n in [*nc.workers.values(), nc.scheduler]
                if n and CRASH_MARKS.search(n.log_text())
            ]
            outcome.step(
                "every worker connected, no crash in any log",
                not gone and not crashed,
                f"gone {gone}, crashed {crashed}",
            )
            init.write_bytes(original)
    return outcome


def compare(name: str, requirement: str, work: Path) -> tuple[str, int, int, list[str], list[str]]:
    """The dry run against the project's own wheel: (status, wheel files, shipped files,
    not shipped, shipped beyond the wheel), tests and metadata aside."""
    project = unpack(sdist(Real(requirement, "", "")), work / "src")
    dry = run([sys.executable, "-m", "shipit", "sync", "--dry-run", "--json", "--no-install"],
              cwd=project)  # fmt: skip
    wheel = wheel_files(project, Path(sys.executable), work / "wheel")
    if dry.returncode not in (0, 1):
        return (dry.stderr.strip().splitlines() or ["?"])[0][:150], len(wheel), 0, [], []
    shipped = shipped_files(json.loads(dry.stdout))
    return "ok", len(wheel), len(shipped), sorted(wheel - shipped), sorted(shipped - wheel)


def main_compare(names: list[str], base: Path) -> int:
    every = {**{n: r.requirement for n, r in PROJECTS.items()}, **LAYOUTS}
    rows = []
    for name in names or list(every):
        work = base / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            rows.append((name, *compare(name, every[name], work)))
        except Exception as e:
            rows.append((name, f"{type(e).__name__}: {e}"[:90], 0, 0, [], []))
        status, wheel, shipped, missing, extra = rows[-1][1:]
        print(f"{name:<18} {status:<6} wheel {wheel:>5}  shipit {shipped:>5}  "
              f"not shipped {len(missing)} {missing[:4]}  "
              f"beyond the wheel {len(extra)} {extra[:4]}", flush=True)  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", choices=[[], *PROJECTS, *LAYOUTS], default=[])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument(
        "--compare", action="store_true",
        help="only compare each dry run with the project's own wheel (no cluster)",
    )  # fmt: skip
    args = parser.parse_args()
    names = args.names or list(PROJECTS)
    base = args.keep or Path(tempfile.mkdtemp(prefix="shipit-real-"))
    base.mkdir(parents=True, exist_ok=True)
    if args.compare:
        try:
            return main_compare(args.names, base)
        finally:
            if not args.keep:
                shutil.rmtree(base, ignore_errors=True)
    outcomes = []
    try:
        for name in names:
            work = base / name
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            try:
                outcomes.append(try_project(name, PROJECTS[name], work))
            except Exception as e:  # a step that could not even run: report, go on
                outcome = Outcome(name)
                outcome.step("could run", False, f"{type(e).__name__}: {e}"[:600])
                outcomes.append(outcome)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print("\nproject      steps ok   failed")
    for o in outcomes:
        bad = [k for k, v in o.steps.items() if v != "ok"]
        print(f"{o.name:<12} {len(o.steps) - len(bad)}/{len(o.steps):<8} {'; '.join(bad)}")
    return 1 if any(o.failed for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
