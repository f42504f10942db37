"""PEP 420 namespace packages ship (issue 12), as ``google/auth`` of google-auth: a folder
with no ``__init__.py`` and no module of its own that holds packages."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import shipit
from shipit.project.plan import plan

from .helpers import Cluster, Project, cli


def _namespace_project(project: Project) -> str:
    ns = f"ns_{uuid.uuid4().hex[:6]}"
    project.write(f"src/{ns}/auth/__init__.py", "from .creds import token\n")
    project.write(f"src/{ns}/auth/creds.py", "def token():\n    return 'tok'\n")
    project.write(f"src/{ns}/oauth2/__init__.py", "")
    project.write("scripts/release.py", "print('not a package')\n")  # modules: not a namespace
    return ns


def test_a_namespace_package_is_a_unit(project: Project) -> None:
    ns = _namespace_project(project)
    units = {p.name: set(p.files) for p in plan(project.root).packs}
    assert units[ns] == {
        f"{ns}/auth/__init__.py",
        f"{ns}/auth/creds.py",
        f"{ns}/oauth2/__init__.py",
    }
    assert "scripts" not in units and "src" not in units


@pytest.mark.cluster
def test_workers_import_a_shipped_namespace_package(cluster: Cluster, project: Project) -> None:
    ns = _namespace_project(project)
    assert shipit.sync(cluster.client, project.root).ok
    probe = project.module("{pkg}.probe")
    got = cluster.on_every_worker(probe.read, f"{ns}.auth.creds", "__name__")
    assert got == [f"{ns}.auth.creds"] * (4 * len(cluster.workers))


@pytest.mark.parametrize(
    "pyproject",
    [
        '[build-system]\nbuild-backend = "flit_core.buildapi"\n[project]\nname = "{pkg}"\n',
        '[tool.setuptools]\npackages = ["{pkg}"]\n',
        '[tool.hatch.build.targets.wheel]\npackages = ["{pkg}"]\n',
        '[tool.poetry]\npackages = [{{include = "{pkg}"}}]\n',
    ],
    ids=["flit", "setuptools", "hatch", "poetry"],
)
def test_the_builds_own_list_of_what_it_ships_wins(project: Project, pyproject: str) -> None:
    # typing_extensions' src/_typed_dict_test_helper.py, simplejson's conf.py: beside the
    # package, not in the wheel
    project.write("pyproject.toml", pyproject)
    assert [p.name for p in plan(project.root).packs] == [project.name]


def test_nothing_to_ship_names_the_fix_for_a_folder_of_modules(tmp_path: Path) -> None:
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "fit.py").write_text("def f():\n    return 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_fit.py").write_text("")
    result = cli("sync", "--dry-run", "--no-install", cwd=tmp_path)
    assert result.returncode == 2
    tip = (
        "analysis/ holds modules but no __init__.py: add one, or ship it as a package with "
        '[tool.shipit] include = ["analysis/"]'
    )
    assert tip in result.stderr.replace("\n", " "), result.stderr
    (tmp_path / "pyproject.toml").write_text('[tool.shipit]\ninclude = ["analysis/"]\n')
    assert [p.name for p in plan(tmp_path).packs] == ["analysis"]  # the tip works
