"""Compiled parts never ship as source over a compiled installation (issue 12): refused
before anything is sent, naming the unit, its files and the option that builds a wheel."""

from __future__ import annotations

import pytest

from shipit.errors import CompiledUnit
from shipit.project.plan import plan

from .helpers import Project, cli


def test_an_extension_declared_to_setuptools_is_refused_with_the_option(project: Project) -> None:
    project.write(
        "setup.py",
        "from setuptools import Extension, setup\n"
        "setup(ext_modules=[Extension('{pkg}._speedups', ['{pkg}/_speedups.c'])])\n",
    )
    project.write("{pkg}/_speedups.c", "/* C */\n")
    with pytest.raises(CompiledUnit) as refused:
        plan(project.root)
    assert refused.value.units == ((project.name, "project", (f"{project.name}/_speedups.c",)),)
    result = cli("sync", "--dry-run", cwd=project.root)
    assert result.returncode == 2, result
    assert f"compiled parts in {project.name} ({project.name}/_speedups.c)" in result.stderr
    assert "install-project = true" in result.stderr


def test_a_compiled_file_in_the_tree_is_refused(project: Project) -> None:
    project.write("{pkg}/_fast.cpython-311-x86_64-linux-gnu.so", "ELF")
    with pytest.raises(CompiledUnit):
        plan(project.root)


def test_c_files_are_data_when_the_build_compiles_nothing(project: Project) -> None:
    project.write("{pkg}/templates/main.c", "int main() {{ return 0; }}\n")  # a code generator's
    assert f"{project.name}/templates/main.c" in {
        f for p in plan(project.root).packs for f in p.files
    }


def test_install_project_builds_it_instead(project: Project) -> None:
    project.write("{pkg}/_fast.cpython-311-x86_64-linux-gnu.so", "ELF")
    project.write("pyproject.toml", "[tool.shipit]\ninstall-project = true\n")
    plan(project.root)  # not shipped as code: built into a wheel at sync
