"""`shipit status`: what each node runs, next to the local files."""

from __future__ import annotations

import json
import platform

import distributed
import pytest

import shipit

from .helpers import Cluster, Project, cli, free_port
from .helpers import shipit as run_shipit

pytestmark = pytest.mark.cluster  # every test here starts a cluster or a shipit process


def test_status_shows_every_node_current_then_behind_after_an_edit(
    local_cluster: Cluster, project: Project
) -> None:
    client = local_cluster.client
    shipit.sync(client, project.root, install=False)

    report = shipit.status(client, project.root)

    assert [n.role for n in report.nodes] == ["scheduler", "worker", "worker"]
    assert report.behind == ()
    for node in report.nodes:
        assert node.units[project.name] == report.local[project.name]
        assert node.python == platform.python_version()
        assert node.versions["distributed"] == distributed.__version__
    for worker in report.nodes[1:]:
        assert worker.nanny and worker.nanny.startswith("tcp://127.0.0.1:")
        assert worker.local_directory and "dask-scratch-space" in worker.local_directory

    project.write("{pkg}/sub.py", "VALUE = 2\n")
    address = local_cluster.scheduler_address
    shown = run_shipit("status", str(project.root), "--scheduler", address)
    as_json = json.loads(
        run_shipit("status", str(project.root), "--json", "--scheduler", address).stdout
    )

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    worker_lines = [line for line in lines if line.startswith(tuple(local_cluster.workers))]
    assert len(worker_lines) == 2
    assert all(f"BEHIND ({project.name})" in line and " yes " in line for line in worker_lines)
    assert lines[-1].startswith("3 node(s) behind the local files or not answering")
    assert [n["behind"] for n in as_json["nodes"]] == [[project.name]] * 3

    shipit.sync(client, project.root, install=False)
    assert shipit.status(client, project.root).behind == ()


def test_status_lists_what_the_scheduler_holds_and_from_which_project(
    inproc_cluster: Cluster, project: Project
) -> None:
    shipit.sync(inproc_cluster.client, project.root, install=False)
    report = shipit.status(inproc_cluster.client, project.root)
    held = {name: (where, files) for name, where, files, _ in report.held}
    assert held["helpers"] == (f"{platform.node()}:{project.root}", 1)
    assert held[project.name][1] == 3
    sizes = {name: size for name, _, _, size in report.held}
    helpers_size = len((project.root / "helpers.py").read_bytes())
    assert sizes["helpers"] == helpers_size and report.held_bytes >= sum(sizes.values()) - 1
    shown = cli("status", str(project.root), "--scheduler", inproc_cluster.scheduler_address)
    assert "the scheduler holds 2 unit(s)" in shown.stdout, shown


@pytest.mark.parametrize("command", ["status", "doctor"])
def test_an_unreachable_scheduler_is_one_line(command: str) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    result = run_shipit(command, "--scheduler", address, "--timeout", "1")
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"ERROR connection refused: is the scheduler running at {address}?"
    )
    assert "Traceback" not in result.stderr
