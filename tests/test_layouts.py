"""One fixture project per real layout (issue 12): the dry run ships what the project's own
wheel holds (``python -m build --wheel`` with its own backend, tests aside), and after a real
sync tasks on every worker import the package, read its data with ``importlib.resources``
and ``Path(__file__)``, and read its version with ``importlib.metadata``.

The backends (setuptools, hatchling, flit-core, poetry-core, pdm-backend) come with the test
dependencies: wheels are built in this environment, with no download.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import shipit

from .helpers import Cluster, cli

DATA = {"data/config.json": '{"answer": 42}\n', "templates/page.html": "<p>{{ x }}</p>\n"}
CA = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUR3Nvbm1lIHB1YmxpYyBjZXJ0aWZpY2F0ZTAKBggqhkjO\n-----END CERTIFICATE-----\n"  # noqa: E501


def _package(name: str) -> dict[str, str]:
    """A package that reads its data and its version the two usual ways."""
    init = f'''
        import importlib.metadata, importlib.resources, json
        from pathlib import Path

        def facts():
            here = Path(__file__).parent
            return [
                json.loads(importlib.resources.files(__name__).joinpath("data/config.json").read_text())["answer"],
                (here / "templates" / "page.html").read_text().strip(),
                (here / "cacert.pem").read_text().count("BEGIN CERTIFICATE"),
                importlib.metadata.version("{name}"),
            ]
    '''
    files = {"__init__.py": textwrap.dedent(init).lstrip(), "py.typed": "", "cacert.pem": CA}
    return {**files, **DATA, "tests/test_it.py": "def test(): pass\n"}


def _layout(kind: str, root: Path, name: str) -> None:
    """Write the project ``name`` at ``root`` in the layout ``kind``."""
    project = f'[project]\nname = "{name}"\nversion = "1.4.0"\ndescription = "A lab package."\n'
    src = {"setuptools-src": "src/", "package-dir": "lib/", "setup-cfg": "lib/"}.get(kind, "")
    if kind in ("hatch", "pdm", "poetry"):
        src = "src/"
    pyproject = {
        "setuptools-flat": project
        + '[tool.setuptools]\npackages = ["{n}", "{n}.data", "{n}.templates"]\n'
        '[tool.setuptools.package-data]\n"*" = ["*.json", "*.html", "*.pem", "py.typed"]\n',
        "setuptools-src": project + '[tool.setuptools.packages.find]\nwhere = ["src"]\n'
        '[tool.setuptools.package-data]\n"*" = ["*.json", "*.html", "*.pem", "py.typed"]\n',
        "package-dir": project + '[tool.setuptools]\npackage-dir = {{"" = "lib"}}\n'
        '[tool.setuptools.package-data]\n"*" = ["*.json", "*.html", "*.pem", "py.typed"]\n',
        "hatch": project + '[tool.hatch.build.targets.wheel]\npackages = ["src/{n}"]\n',
        "flit": project + '[tool.flit.module]\nname = "{n}"\n',
        "poetry": project + '[tool.poetry]\npackages = [{{include = "{n}", from = "src"}}]\n',
        "pdm": project + "[tool.pdm.build]\npackage-dir = \"src\"\n",
        "setup-cfg": "",
    }[kind].format(n=name)  # fmt: skip
    backend = {
        "hatch": ("hatchling", "hatchling.build"),
        "flit": ("flit_core", "flit_core.buildapi"),
        "poetry": ("poetry-core", "poetry.core.masonry.api"),
        "pdm": ("pdm-backend", "pdm.backend"),
    }.get(kind, ("setuptools", "setuptools.build_meta"))
    build = f'[build-system]\nrequires = ["{backend[0]}"]\nbuild-backend = "{backend[1]}"\n'
    (root / "pyproject.toml").parent.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(build + pyproject)
    if kind == "setup-cfg":  # the declarative setuptools of before pyproject.toml
        (root / "setup.cfg").write_text(
            f"[metadata]\nname = {name}\nversion = 1.4.0\n\n[options]\npackage_dir =\n    =lib\n"
            "packages = find:\ninclude_package_data = False\n\n[options.packages.find]\n"
            "where = lib\n\n[options.package_data]\n"
            "* = *.pem, py.typed, data/*.json, templates/*.html\n"
        )
    for rel, text in _package(name).items():
        path = root / src / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "test_top.py").write_text("def test(): pass\n")


KINDS = [
    "setuptools-flat", "setuptools-src", "package-dir", "setup-cfg",
    "hatch", "flit", "poetry", "pdm",
]  # fmt: skip


def _wheel_files(root: Path, out: Path) -> set[str]:
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
         str(root)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    return {
        n for n in names
        if not n.endswith("/") and ".dist-info/" not in n and "/tests/" not in n
    }  # fmt: skip


def _shipped(root: Path) -> set[str]:
    result = cli("sync", "--dry-run", "--json", "--no-install", cwd=root)
    assert result.returncode == 0, result
    units = json.loads(result.stdout)["units"]
    return {f for u in units for f in u["files"] if ".dist-info/" not in f}


@pytest.mark.parametrize("kind", KINDS)
def test_the_dry_run_ships_what_its_own_wheel_holds(kind: str, tmp_path: Path) -> None:
    name = f"lay_{kind.replace('-', '_')}"
    _layout(kind, tmp_path / "p", name)
    wheel = _wheel_files(tmp_path / "p", tmp_path / "wheel")
    assert f"{name}/cacert.pem" in wheel and f"{name}/py.typed" in wheel  # the fixture is real
    assert _shipped(tmp_path / "p") == wheel


@pytest.mark.cluster
def test_workers_read_each_layouts_data_and_version(local_cluster: Cluster, tmp_path: Path) -> None:
    want = [42, "<p>{{ x }}</p>", 1, "1.4.0"]
    for kind in KINDS:
        name = f"lay_{kind.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
        _layout(kind, tmp_path / kind, name)
        assert shipit.sync(local_cluster.client, tmp_path / kind).ok

        def facts(module: str = name) -> Callable[[], list[object]]:
            import importlib

            return importlib.import_module(module).facts()

        got = local_cluster.client.run(facts)
        assert list(got.values()) == [want] * len(local_cluster.workers), (kind, got)
