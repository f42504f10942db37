"""The `shipit` command as a user runs it: a real process, its exit code and its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from shipit import plan

from .helpers import Cluster, Project, free_port, on_a_terminal, shipit

pytestmark = pytest.mark.cluster  # every test here starts a cluster or a shipit process


def test_sync_without_a_scheduler_says_how_to_give_one(project: Project) -> None:
    result = shipit("sync", str(project.root))
    assert result.returncode == 2
    assert "no scheduler given" in result.stderr
    assert "DASK_SCHEDULER_ADDRESS" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["sync", "check", "status", "doctor", "watch", "run"])
def test_a_closed_port_is_refused_at_once_in_one_line(project: Project, command: str) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    project.write("script.py", "print('never runs')\n")
    tail = ["script.py"] if command == "run" else []
    started = time.monotonic()
    env = {"DASK_SCHEDULER_ADDRESS": address}
    result = shipit(command, "--timeout", "120", *tail, cwd=project.root, env=env)
    # Far sooner than the timeout, even where starting the interpreter takes seconds.
    assert time.monotonic() - started < 60
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"connection refused: is the scheduler running at {address}?" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # the error and a tip


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("nonsense://x:1", "unknown address scheme 'nonsense'"),
        ("tcp://", "missing port number"),
        ("tcp://:8786", "it needs a host and a port"),
        ("tcp://127.0.0.1:99999", "it needs a host and a port"),
        ("127.0.0.1:notaport", "invalid literal"),
    ],
)
def test_malformed_address_is_a_usage_error(project: Project, address: str, reason: str) -> None:
    started = time.monotonic()
    result = shipit("sync", str(project.root), "--scheduler", address, "--timeout", "120")
    # Refused without trying to connect: far sooner than the timeout, even on a loaded machine
    # where starting the interpreter alone can take seconds.
    assert time.monotonic() - started < 60
    assert result.returncode == 2
    first, tip = result.stderr.splitlines()
    assert first.startswith(f"ERROR malformed scheduler address {address!r}: ") and reason in first
    assert tip.startswith("TIP   write it as tcp://HOST:PORT")


# A server that frames its messages as Dask does, but whose first message is no Dask
# handshake (a list, where a Dask peer sends a dict). It says "ready" once it listens.
_NOT_A_SCHEDULER = """
import asyncio, sys
from distributed.comm import listen
from distributed.comm.tcp import TCP

async def write(self, msg, *args, **kwargs):
    return await dask_write(self, ["not", "a", "scheduler"], *args, **kwargs)

dask_write, TCP.write = TCP.write, write

async def main():
    listener = listen(sys.argv[1], lambda comm: comm.abort())
    await listener.start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_a_port_that_is_not_a_scheduler_is_a_connection_error(project: Project) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [sys.executable, "-c", _NOT_A_SCHEDULER, address], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        result = shipit("sync", str(project.root), "--scheduler", address, "--timeout", "2")
    finally:
        server.kill()
        server.wait()
    assert result.returncode == 2
    assert result.stderr.startswith(f"ERROR cannot reach the scheduler at {address}")
    assert "does not speak Dask's protocol" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_configuration_is_named(project: Project) -> None:
    (project.root / "pyproject.toml").write_text("[tool.shipit]\nexclud = ['x']\n")
    result = shipit("sync", str(project.root), "--dry-run")
    assert result.returncode == 2
    assert "unknown key [tool.shipit] 'exclud' (did you mean 'exclude'?)" in result.stderr


def test_dry_run_lists_units_and_files_without_connecting(project: Project) -> None:
    project.write("tests/test_sub.py", "def test(): pass\n")
    project.write(".env", "TOKEN=secret\n")
    result = shipit("sync", str(project.root), "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"  {project.name}/sub.py" in lines
    assert "  helpers.py" in lines
    assert not any("test_sub" in line or ".env" in line for line in lines)
    assert lines[-1].startswith("would ship 2 unit(s)") and "nothing was sent" in lines[-1]


def test_dry_run_names_a_syntax_error(project: Project) -> None:
    project.write("{pkg}/sub.py", "def broken(:\n")
    result = shipit("sync", str(project.root), "--dry-run", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [u["name"] for u in report["units"]] == ["helpers"]
    assert report["problems"] and f"{project.name}/sub.py:1: " in report["problems"][0]


def test_sync_ships_then_reports_nothing_to_do(local_cluster: Cluster, project: Project) -> None:
    address = local_cluster.scheduler_address
    first = shipit("sync", str(project.root), "--scheduler", address)
    assert first.returncode == 0, first.stderr
    assert any(
        line.startswith(f"shipped    {project.name}") and "3/3 nodes" in line
        for line in first.stdout.splitlines()
    ), first.stdout
    second = shipit("sync", str(project.root), "--json", env={"DASK_SCHEDULER_ADDRESS": address})
    assert second.returncode == 0
    report = json.loads(second.stdout)
    assert report["ok"] is True
    assert {u["status"] for u in report["units"]} == {"unchanged"}


def test_a_node_that_fails_is_named_and_keeps_its_code(
    local_cluster: Cluster, project: Project
) -> None:
    client, address = local_cluster.client, local_cluster.scheduler_address
    assert shipit("sync", str(project.root), "--scheduler", address).returncode == 0
    victim, healthy = local_cluster.workers

    project.write("{pkg}/sub.py", "VALUE = 2\n\ndef value():\n    return VALUE\n")
    digest = next(p.digest for p in plan(project.root).packs if p.name == project.name)

    def occupy(name, dask_worker):  # type: ignore[no-untyped-def]
        # A folder where this node's pin of the new version must go: a real failure there.
        os.mkdir(os.path.join(dask_worker._shipit_store.node.path, name))

    client.run(occupy, f"{project.name}-{digest[:16]}", workers=[victim])
    result = shipit("sync", str(project.root), "--scheduler", address)

    assert result.returncode == 1
    assert f"failed     {victim}: IsADirectoryError" in result.stderr
    assert "synced 1 unit(s) to 2/3 nodes" in result.stdout
    value = project.module("{pkg}.sub").value
    on_victim = client.submit(value, pure=False, workers=[victim], allow_other_workers=False)
    on_healthy = client.submit(value, pure=False, workers=[healthy], allow_other_workers=False)
    assert (on_victim.result(), on_healthy.result()) == (1, 2)


def test_sync_on_a_terminal_shows_each_step_then_erases_it(
    local_cluster: Cluster, project: Project
) -> None:
    address = local_cluster.scheduler_address
    code, out, shown = on_a_terminal(["sync", str(project.root), "--scheduler", address])
    assert code == 0
    assert b"shipping 2 unit(s), 4 files, to every node..." in shown
    assert shown.endswith(b"\r\x1b[K")  # the status line is gone; the report stays on stdout
    assert b"synced 1 unit(s)" not in shown and b"synced 2 unit(s)" in out
