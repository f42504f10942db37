"""The project's own distribution metadata on every node (issue 12): after a sync,
``importlib.metadata`` on a worker gives the version, metadata and entry points the client's
source says, and an edit of the version reaches the workers like any edit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import shipit
from shipit.project.plan import plan

from .helpers import Cluster, Project

PYPROJECT = """
[project]
name = "{name}"
version = "{version}"
description = "A package under development."
dependencies = ["toolz"]

[project.entry-points."shipit.tests"]
score = "{pkg}.sub:value"
"""


def _pyproject(project: Project, version: str) -> None:
    name = project.name.replace("_", "-").title()  # the name as its author spells it
    project.write("pyproject.toml", PYPROJECT.format(name=name, version=version, pkg="{pkg}"))


def _reader() -> Callable[[str], tuple[str, str | None, list[str]]]:
    """A task that reads a distribution's metadata (a closure: it pickles by value, so bare
    workers without this test module run it)."""

    def metadata(dist: str) -> tuple[str, str | None, list[str]]:
        import importlib.metadata as md

        found = md.distribution(dist)
        points = [f"{e.name}={e.value}" for e in found.entry_points if e.group == "shipit.tests"]
        return md.version(dist), found.metadata.get("Summary"), points

    return metadata


def test_the_dist_info_is_written_from_a_static_pyproject(project: Project) -> None:
    _pyproject(project, "1.2.0")
    (pack,) = [p for p in plan(project.root).packs if p.name == project.name]
    folder = f"{project.name}-1.2.0.dist-info"
    assert {f"{folder}/METADATA", f"{folder}/entry_points.txt"} <= set(pack.files)
    metadata = pack.read(f"{folder}/METADATA").decode()
    assert "Version: 1.2.0\n" in metadata and "Requires-Dist: toolz\n" in metadata


@pytest.mark.cluster
def test_workers_read_the_projects_version_and_entry_points(
    cluster: Cluster, project: Project
) -> None:
    dist = project.name.replace("_", "-")
    _pyproject(project, "1.2.0")
    assert shipit.sync(cluster.client, project.root).ok
    want = ("1.2.0", "A package under development.", [f"score={project.name}.sub:value"])
    assert cluster.on_every_worker(_reader(), dist) == [want] * (4 * len(cluster.workers))

    _pyproject(project, "1.3.0")
    assert shipit.sync(cluster.client, project.root).ok
    versions = cluster.on_every_worker(_reader(), dist)
    assert {v[0] for v in versions} == {"1.3.0"}, versions


@pytest.mark.cluster
def test_an_editable_install_gives_its_computed_version(
    local_cluster: Cluster, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What pip writes for `pip install -e .` of a project whose backend computes the version
    # (setuptools-scm): the metadata lives in the environment, not in pyproject.toml.
    project.write("pyproject.toml", f'[project]\nname = "{project.name}"\ndynamic = ["version"]\n')
    site = tmp_path / "site"
    info = site / f"{project.name}-0.4.1.dev3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project.name}\nVersion: 0.4.1.dev3\nSummary: scm\n"
    )
    (info / "direct_url.json").write_text(
        json.dumps({"url": project.root.as_uri(), "dir_info": {"editable": True}})
    )
    monkeypatch.syspath_prepend(str(site))
    assert shipit.sync(local_cluster.client, project.root).ok
    versions = local_cluster.on_every_worker(_reader(), project.name)
    assert {v[:2] for v in versions} == {("0.4.1.dev3", "scm")}, versions


@pytest.mark.cluster
def test_the_shipped_metadata_wins_over_an_installed_copy_of_the_project(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client, LocalCluster

    # The project installed on the workers at an older version (a plain, non-editable install).
    site = tmp_path / "site"
    info = site / f"{project.name}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project.name}\nVersion: 0.1.0\n")
    monkeypatch.syspath_prepend(str(site))  # spawned workers start with this sys.path
    _pyproject(project, "1.2.0")
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as lc,
        Client(lc) as client,
    ):
        before = client.run(_reader(), project.name)
        assert {v[0] for v in before.values()} == {"0.1.0"}, before
        assert shipit.sync(client, project.root).ok
        after = client.run(_reader(), project.name)
        assert {v[0] for v in after.values()} == {"1.2.0"}, after
