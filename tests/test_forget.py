"""``shipit forget`` (issue 12): units leave the scheduler and every node, other units and
other projects stay, and a name the cluster does not hold is a usage error."""

from __future__ import annotations

import importlib

import pytest

import shipit

from .helpers import Cluster, Project, cli

pytestmark = pytest.mark.cluster


def _importable(cluster: Cluster, name: str) -> list[bool]:
    results = cluster.client.run(importlib.import_module, name, on_error="return")
    return [not isinstance(r, Exception) for r in results.values()]


def test_forget_removes_a_unit_from_every_node(cluster: Cluster, project: Project) -> None:
    assert shipit.sync(cluster.client, project.root).ok
    assert _importable(cluster, "helpers") == [True] * len(cluster.workers)

    result = cli("forget", "helpers", "--scheduler", cluster.scheduler_address)
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0] == "removed    helpers"
    assert lines[-1].startswith(f"forgot 1 unit(s) on {len(cluster.workers) + 1}/")
    assert _importable(cluster, "helpers") == [False] * len(cluster.workers)
    assert _importable(cluster, f"{project.name}.sub") == [True] * len(cluster.workers)
    # the project's next sync ships it again
    report = shipit.sync(cluster.client, project.root)
    assert "helpers" in [u.name for u in report.shipped]


def test_forgetting_a_unit_the_cluster_does_not_hold_is_a_usage_error(
    inproc_cluster: Cluster, project: Project
) -> None:
    assert shipit.sync(inproc_cluster.client, project.root).ok
    result = cli("forget", "nosuchunit", "--scheduler", inproc_cluster.scheduler_address)
    assert result.returncode == 2
    assert "no unit named nosuchunit on the cluster" in result.stderr
    assert f"it holds: helpers, {project.name}" in result.stderr
