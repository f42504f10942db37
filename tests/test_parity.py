"""What a check compares, decided from the project without a cluster; the [tool.shipit] keys."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shipit.config import load_config
from shipit.errors import ConfigError
from shipit.parity.check import Parity, wanted_distributions
from shipit.parity.versions import DASK_OPTIONAL, DASK_STACK
from shipit.project.discover import Project


def write_project(root: Path, pyproject: str) -> Path:
    (root / "pyproject.toml").write_text(textwrap.dedent(pyproject))
    (root / "job.py").write_text(
        "import os\nimport yaml\nimport click.testing\nimport shipit\nfrom helpers import helper\n"
        "\ndef run():\n    import pathspec  # imports inside functions run on workers too\n"
    )
    (root / "helpers.py").write_text("def helper():\n    return 1\n")
    return root


def test_what_a_check_compares(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        """
        [project]
        name = "job"
        version = "0"
        dependencies = ["packaging>=23", "tomli; python_version < '3'"]

        [tool.shipit]
        extra-packages = ["pytest"]
        ignore = ["Click"]
        severity = { PyYAML = "warning" }
        """,
    )
    config = load_config(root)
    wanted = wanted_distributions(config, Project(config).units())

    assert list(wanted)[: len(DASK_STACK)] == list(DASK_STACK)
    assert all(wanted[name] is False for name in DASK_OPTIONAL)
    # imported (yaml -> pyyaml, pathspec), declared (packaging), extra (pytest); not: the
    # standard library, the project's own modules, ignored click, shipit, markers for Python 2
    project_side = [name for name in wanted if name not in (*DASK_STACK, *DASK_OPTIONAL)]
    assert project_side == ["packaging", "pathspec", "pytest", "pyyaml"]
    assert Parity(root).severity["pyyaml"] == "warning"


BAD_CONFIGS = [
    ('severity = { numpy = "fatal" }', 'must map package names to "error" or "warning"'),
    ('severity = ["numpy"]', 'must map package names to "error" or "warning"'),
    ("ignore = 'numpy'", "ignore must be a list of strings"),
    ('extra-package = ["numpy"]', "unknown key [tool.shipit] 'extra-package' (did you mean"),
]


@pytest.mark.parametrize("line, message", BAD_CONFIGS)
def test_bad_check_settings_are_named(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.shipit]\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert message in str(info.value)


def test_a_bad_requirement_is_a_config_error(tmp_path: Path) -> None:
    root = write_project(tmp_path, '[tool.shipit]\nextra-packages = ["numpy>>2"]\n')
    with pytest.raises(ConfigError) as info:
        Parity(root)
    assert "[tool.shipit] extra-packages: 'numpy>>2' is not a requirement" in str(info.value)


def test_guarded_imports_and_extras_not_named_are_optional(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        """
        [project]
        name = "job"
        version = "0"

        [project.optional-dependencies]
        cli = ["click"]
        test = ["pytest"]

        [tool.shipit]
        extras = ["cli"]
        """,
    )
    (root / "job.py").write_text(
        "try:\n    import yaml\nexcept ImportError:\n    yaml = None\n\nimport pathspec\n"
    )
    parity = Parity(root)
    project_side = [n for n in parity.wanted if n not in (*DASK_STACK, *DASK_OPTIONAL)]
    # required: the plain import, the extra the user named; optional: the rest
    assert project_side == ["click", "pathspec"]
    assert parity.optional == ("pytest", "pyyaml")


def test_extra_packages_makes_an_optional_import_required(tmp_path: Path) -> None:
    root = write_project(tmp_path, '[tool.shipit]\nextra-packages = ["pyyaml"]\n')
    (root / "job.py").write_text("try:\n    import yaml\nexcept ImportError:\n    pass\n")
    parity = Parity(root)
    assert parity.wanted["pyyaml"] is True and "pyyaml" not in parity.optional


def test_an_extra_the_project_lacks_is_named(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        '[project.optional-dependencies]\ncli = ["click"]\n[tool.shipit]\nextras = ["clii"]\n',
    )
    with pytest.raises(ConfigError) as info:
        Parity(root)
    assert str(info.value) == (
        "[tool.shipit] extras names 'clii', which [project.optional-dependencies] does not "
        "have (it has: cli)"
    )
