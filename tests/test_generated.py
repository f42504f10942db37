"""Generated files that the package imports ship though .gitignore lists them (issue 12),
as setuptools-scm's ``_version.py`` in pytest: and the sync says so."""

from __future__ import annotations

import pytest

import shipit
from shipit.project.plan import plan

from .helpers import Cluster, Project, cli


def _scm_project(project: Project) -> None:
    project.write(".gitignore", "{pkg}/_version.py\n{pkg}/_cache.py\n")
    project.write("{pkg}/_version.py", "version = '9.2.0'\n")  # written by the build backend
    project.write("{pkg}/_cache.py", "X = 1\n")  # ignored, imported by nothing
    project.write("{pkg}/__init__.py", "from ._version import version as __version__\n")


def test_an_ignored_module_the_package_imports_ships_and_is_named(project: Project) -> None:
    _scm_project(project)
    the_plan = plan(project.root)
    files = {f for p in the_plan.packs for f in p.files}
    assert f"{project.name}/_version.py" in files
    assert f"{project.name}/_cache.py" not in files  # still ignored: nothing imports it
    result = cli("sync", "--dry-run", "--no-install", cwd=project.root)
    assert (
        f"ships too  {project.name}/_version.py: .gitignore lists it; "
        f"{project.name}/__init__.py imports it"
    ) in result.stdout.splitlines(), result.stdout


@pytest.mark.cluster
def test_workers_read_the_generated_version(cluster: Cluster, project: Project) -> None:
    _scm_project(project)
    assert shipit.sync(cluster.client, project.root).ok
    probe = project.module("{pkg}.probe")
    got = cluster.on_every_worker(probe.read, project.name, "__version__")
    assert got == ["9.2.0"] * (4 * len(cluster.workers))
