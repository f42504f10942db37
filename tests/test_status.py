"""`shipit status`: what each node runs, next to the local files."""

from __future__ import annotations

import json
import platform

import distributed
import pytest

import shipit

from .helpers import Cluster, Project, free_port
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


@pytest.mark.parametrize("command", ["status", "doctor"])
def test_an_unreachable_scheduler_is_one_line(command: str) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    result = run_shipit(command, "--scheduler", address, "--timeout", "1")
    assert result.returncode == 2
    assert result.stderr.startswith(f"ERROR cannot reach the scheduler at {address}")
    assert "Traceback" not in result.stderr
