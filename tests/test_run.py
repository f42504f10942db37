"""`shipit run`: sync, parity, then the user's script in its own process, with its exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from shipit.run import run_process

from .helpers import Project, on_a_terminal, shipit

SCRIPT = """
import sys
from distributed import Client
from {pkg}.sub import value

with Client() as client:
    print("value", client.submit(value, pure=False).result())
    print("argv", sys.argv[1:])
sys.exit(7)
"""


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as lc:
        yield lc.scheduler_address


@pytest.mark.cluster
def test_run_starts_a_cluster_ships_and_hands_the_script_its_args_and_exit_code(
    project: Project,
) -> None:
    project.write("script.py", SCRIPT)
    project.write("{pkg}/sub.py", "def value():\n    return 41 + 1\n")

    result = shipit(
        "run", "--workers", "1", "script.py", "--scheduler", "x", "-h", "--", "a b",
        cwd=project.root,
    )  # fmt: skip

    assert result.returncode == 7, result.stderr
    assert result.stdout.splitlines() == [
        "value 42",
        "argv ['--scheduler', 'x', '-h', '--', 'a b']",
    ]
    assert "started a local cluster at tcp://127.0.0.1:" in result.stderr
    assert "versions in parity; running with DASK_SCHEDULER_ADDRESS=tcp://" in result.stderr


@pytest.mark.cluster
def test_run_uses_the_given_scheduler_and_ships_the_latest_code(
    address: str, project: Project
) -> None:
    project.write("script.py", SCRIPT)
    project.write("{pkg}/sub.py", "def value():\n    return 'first'\n")
    first = shipit("run", "script.py", cwd=project.root, env={"DASK_SCHEDULER_ADDRESS": address})
    project.write("{pkg}/sub.py", "def value():\n    return 'second'\n")
    second = shipit("run", "--scheduler", address, "script.py", cwd=project.root)
    third = shipit("run", "--scheduler", address, "script.py", cwd=project.root)

    assert (first.returncode, second.returncode, third.returncode) == (7, 7, 7)
    assert first.stdout.splitlines()[0] == "value first"
    assert second.stdout.splitlines()[0] == "value second"
    assert f"ready    shipped {project.name}, current on 3/3 nodes; versions" in second.stderr
    # Nothing new to ship: where the code is held, not "shipped nothing new to 0/0 nodes"
    (ready,) = [line for line in third.stderr.splitlines() if line.startswith("ready ")]
    assert project.name in ready and " current on 3/3 nodes; versions in parity" in ready
    assert "started a local cluster" not in first.stderr + second.stderr


@pytest.mark.cluster
def test_a_syntax_error_refuses_the_run(address: str, project: Project) -> None:
    project.write("script.py", "open('ran', 'w').close()\n")
    project.write("{pkg}/sub.py", "def value(:\n")

    result = shipit("run", "--scheduler", address, "script.py", cwd=project.root)

    assert result.returncode == 1
    assert f"{project.name}/sub.py:1" in result.stderr
    assert "not run: fix the above" in result.stderr
    assert not (project.root / "ran").exists()


@pytest.mark.cluster
def test_a_parity_error_refuses_the_run_with_the_table(
    address: str, project: Project, tmp_path: Path
) -> None:
    # A distribution only the client has: nodes lack it, an error for a declared package.
    site = tmp_path / "client-only"
    info = site / "onlyhere-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onlyhere\nVersion: 1.0\n\n")
    project.write("pyproject.toml", '[tool.shipit]\nextra-packages = ["onlyhere"]\n')
    project.write("script.py", "open('ran', 'w').close()\n")

    result = shipit(
        "run", "--scheduler", address, "--no-install", "script.py",
        cwd=project.root, env={"PYTHONPATH": str(site)},
    )  # fmt: skip

    assert result.returncode == 1, result.stderr
    table = result.stderr
    assert "onlyhere" in table and "1.0" in table and "error" in table
    assert "not run" in table
    assert not (project.root / "ran").exists()


@pytest.mark.cluster
def test_a_missing_script_is_a_usage_error(address: str, project: Project) -> None:
    result = shipit("run", "--scheduler", address, "nothere.py", cwd=project.root)
    assert result.returncode == 2
    assert result.stderr.startswith("ERROR no script at nothere.py")
    assert "Traceback" not in result.stderr


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("signum", "expected", "ignored"),
    [(signal.SIGTERM, 5, False), (signal.SIGINT, 6, False), (signal.SIGINT, 6, True)],
    ids=["TERM", "INT", "INT-inherited-ignored"],
)
def test_signals_reach_the_script(
    address: str, project: Project, signum: signal.Signals, expected: int, ignored: bool
) -> None:
    """Also when shipit starts with SIGINT ignored, as a background job of a script does."""
    project.write(
        "script.py",
        """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(5))
        try:
            print("started", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            sys.exit(6)
        """,
    )
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipit", "run", "--scheduler", address, "script.py"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # no terminal: only shipit can hand the script a Ctrl-C
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignored else None,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == expected


def test_a_script_killed_by_a_signal_exits_like_a_shell_says(tmp_path: Path) -> None:
    script = tmp_path / "die.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert run_process([sys.executable, str(script)]) == 128 + signal.SIGKILL


@pytest.mark.cluster
def test_run_from_python_returns_the_report(address: str, project: Project) -> None:
    import shipit as api

    project.write("script.py", "import sys\nsys.exit(0)\n")
    with Client(address) as client:
        report = api.run(project.root / "script.py", [], client, project.root)
    assert report.returncode == 0 and not report.refused
    assert report.sync.ok and report.parity is not None and report.parity.ok
    assert project.name in [u.name for u in report.sync.shipped]


@pytest.mark.cluster
def test_on_a_terminal_run_shows_its_steps_then_leaves_the_terminal_to_the_script(
    address: str, project: Project
) -> None:
    project.write("script.py", "import sys\nprint('script says hi', file=sys.stderr)\n")
    code, _, shown = on_a_terminal(["run", "--scheduler", address, "script.py"], project.root)
    assert code == 0
    assert b"shipping 3 unit(s), 5 files, to every node..." in shown
    assert b"checking versions on every node..." in shown
    before, _, after = shown.partition(b"ready ")
    assert before.endswith(b"\r\x1b[K")  # the status line is gone before the script starts
    assert b"\x1b[K" not in after and b"script says hi" in after
