"""discover.py: real project trees in tmp_path, no cluster, nothing imported from them."""

from __future__ import annotations

import json
import logging
import os
import textwrap
from collections.abc import Iterable, Mapping
from importlib.metadata import PathDistribution
from pathlib import Path

import pytest

import shipit.project.discover
from shipit.config import load_config
from shipit.errors import ConfigError, UsageError
from shipit.project.discover import Project, Unit, discover, editable_units


def build(root: Path, files: Iterable[str] | Mapping[str, str], pyproject: str = "") -> Path:
    """Write ``files`` (empty, or with the given text) under ``root``, and a pyproject.toml."""
    items = files.items() if isinstance(files, Mapping) else ((rel, "") for rel in files)
    for rel, text in items:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    if pyproject:
        (root / "pyproject.toml").write_text(textwrap.dedent(pyproject).lstrip())
    return root


def project_at(root: Path) -> Project:
    # distributions=[]: these tests are about the project folder, not the environment.
    return Project(load_config(root), distributions=[])


def shipped(root: Path) -> set[str]:
    """Every shipped file, relative to the project root."""
    units = project_at(root).units()
    return {
        (unit.root / file).relative_to(root).as_posix() for unit in units for file in unit.files
    }


def names_and_roots(root: Path) -> dict[str, str]:
    return {u.name: u.root.relative_to(root).as_posix() for u in project_at(root).units()}


@pytest.mark.parametrize(
    ("files", "pyproject", "expected"),
    [
        pytest.param(["pkg/__init__.py", "mod.py"], "", {"pkg": ".", "mod": "."}, id="flat"),
        pytest.param(
            ["src/pkg/__init__.py", "src/mod.py"], "", {"pkg": "src", "mod": "src"}, id="src"
        ),
        pytest.param(
            ["lib/pkg/__init__.py"],
            '[tool.setuptools]\npackage-dir = {"" = "lib"}\n',
            {"pkg": "lib"},
            id="setuptools-package-dir",
        ),
        pytest.param(
            ["python/pkg/__init__.py"],
            '[tool.setuptools.packages.find]\nwhere = ["python"]\n',
            {"pkg": "python"},
            id="setuptools-find-where",
        ),
        pytest.param(
            ["code/nsfoo/a.py"],
            '[tool.hatch.build.targets.wheel]\npackages = ["code/nsfoo"]\n',
            {"nsfoo": "code"},
            id="hatch-packages",
        ),
        pytest.param(
            ["source/bar/a.py", "source/other/a.py"],
            '[tool.poetry]\npackages = [{include = "bar", from = "source"}]\n',
            {"bar": "source"},
            id="poetry-packages",
        ),
        pytest.param(
            ["ns/a.py", "loose/a.py"],
            '[tool.setuptools]\npackages = ["ns", "ns.sub"]\n',
            {"ns": "."},
            id="setuptools-packages-list",
        ),
        pytest.param(
            ["pkg/__init__.py", "../outside/x/__init__.py"],
            '[tool.setuptools]\npackage-dir = {"" = "../outside"}\n',
            {"pkg": "."},
            id="folders-outside-the-project-ignored",
        ),
    ],
)
def test_layouts(tmp_path: Path, files: list[str], pyproject: str, expected: dict) -> None:
    root = build(tmp_path / "proj", files, pyproject)
    assert names_and_roots(root) == expected


def test_a_package_ships_all_its_files_relative_to_its_source_root(tmp_path: Path) -> None:
    root = build(
        tmp_path,
        ["src/pkg/__init__.py", "src/pkg/sub.py", "src/pkg/data/x.json", "src/pkg/plain/y.py"],
    )
    assert discover(load_config(root)) == [
        Unit(
            name="pkg",
            root=root / "src",
            files=("pkg/__init__.py", "pkg/data/x.json", "pkg/plain/y.py", "pkg/sub.py"),
        )
    ]


def test_a_folder_without_init_ships_only_when_named(tmp_path: Path) -> None:
    build(tmp_path, ["loose/a.py", "loose/data.txt", "pkg/__init__.py"])
    assert names_and_roots(tmp_path) == {"pkg": "."}
    build(tmp_path, [], '[tool.shipit]\ninclude = ["loose/"]\n')
    assert shipped(tmp_path) == {"pkg/__init__.py", "loose/a.py", "loose/data.txt"}


@pytest.mark.parametrize(
    "left_out",
    [
        # folders that would be packages anywhere else
        "tests/__init__.py",
        "test/__init__.py",
        "testing/__init__.py",
        "src/tests/__init__.py",
        "docs/__init__.py",
        "doc/__init__.py",
        "examples/__init__.py",
        "benchmarks/__init__.py",
        "build/__init__.py",
        "dist/__init__.py",
        "venv/__init__.py",
        "env/__init__.py",
        ".venv/__init__.py",
        "node_modules/__init__.py",
        "anyname/pyvenv.cfg",  # a virtual environment under another name
        # modules that would ship anywhere else
        "setup.py",
        "conftest.py",
        "noxfile.py",
        "fabfile.py",
        "test_root.py",
        "root_test.py",
        "__main__.py",
        "my-script.py",
        # files inside a package
        "pkg/__pycache__/a.cpython-311.pyc",
        "pkg/a.pyc",
        "pkg/a.pyo",
        "pkg/.hidden.py",
        "pkg/.cache/x.py",
        "pkg/node_modules/x.js",
        "pkg/dask-scratch-space/x.py",
        "pkg/foo.egg-info/PKG-INFO",
        "pkg/foo-1.0.dist-info/METADATA",
        "pkg/localenv/pyvenv.cfg",
        "pkg/.tox/x.py",
        "pkg/a.py.swp",
        "pkg/a.py.swo",
        "pkg/a.py~",
        "pkg/.#a.py",
        "pkg/#a.py#",
        "pkg/test_a.py",
        "pkg/a_test.py",
        "pkg/conftest.py",
    ],
)
def test_left_out_by_default(tmp_path: Path, left_out: str) -> None:
    folder = left_out.rpartition("/")[0]
    build(tmp_path, ["pkg/__init__.py", "pkg/neighbour.py", left_out])
    if folder not in ("", "pkg"):
        # With these, the folder would ship (as a package, or as part of pkg) if not left out.
        build(tmp_path, [f"{folder}/__init__.py", f"{folder}/neighbour.py"])
    files = shipped(tmp_path)
    assert {"pkg/__init__.py", "pkg/neighbour.py"} <= files
    assert left_out not in files
    assert project_at(tmp_path).unit_name_for(tmp_path / left_out) is None
    if folder not in ("", "pkg"):
        assert not any(f.startswith(folder + "/") for f in files)


@pytest.mark.parametrize(
    "kept",
    ["pkg/build/x.py", "pkg/env/__init__.py", "pkg/dist/x.py", "pkg/tests/helpers.py", "mod.py"],
)
def test_names_left_out_at_the_root_ship_inside_a_package(tmp_path: Path, kept: str) -> None:
    build(tmp_path, ["pkg/__init__.py", kept])
    assert kept in shipped(tmp_path)


def test_does_not_descend_into_left_out_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(
        tmp_path,
        [
            "pkg/__init__.py",
            ".venv/lib/site-packages/big/__init__.py",
            "node_modules/x/index.js",
            "pkg/__pycache__/a.pyc",
            "pkg/node_modules/y/index.js",
            "env/pyvenv.cfg",
        ],
    )
    listed: list[str] = []
    scandir = os.scandir

    def recording_scandir(path):  # type: ignore[no-untyped-def]
        listed.append(Path(path).relative_to(tmp_path).as_posix())
        return scandir(path)

    monkeypatch.setattr(shipit.project.discover.os, "scandir", recording_scandir)
    project_at(tmp_path).units()
    assert sorted(listed) == [".", "pkg"]


def test_gitignore_files_root_and_nested_with_negation(tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            ".gitignore": "*.log\n!keep.log\ngenerated/\n!generated/rescued.py\n",
            ".git/info/exclude": "plan.txt\n",
            "pkg/.gitignore": "local_*.py\n!local_ok.py\n/only_here.py\n",
            "pkg/sub/.gitignore": "!*.log\n",
            "pkg/__init__.py": "",
            "pkg/a.log": "",
            "pkg/keep.log": "",
            "pkg/generated/g.py": "",
            "pkg/generated/rescued.py": "",  # git cannot re-include inside an ignored folder
            "pkg/local_x.py": "",
            "pkg/local_ok.py": "",
            "pkg/only_here.py": "",
            "pkg/plan.txt": "",
            "pkg/sub/x.log": "",
            "pkg/sub/only_here.py": "",
            "pkg/sub/local_y.py": "",
        },
    )
    assert shipped(tmp_path) == {
        "pkg/__init__.py",
        "pkg/keep.log",
        "pkg/local_ok.py",
        "pkg/sub/x.log",
        "pkg/sub/only_here.py",
    }


SECRETS = [
    "pkg/.env",
    "pkg/.env.prod",
    "pkg/server.pem",
    "pkg/tls.key",
    "pkg/site.crt",
    "pkg/site.cer",
    "pkg/bundle.p12",
    "pkg/bundle.pfx",
    "pkg/store.jks",
    "pkg/app.keystore",
    "pkg/id_rsa",
    "pkg/id_rsa.pub",
    "pkg/id_dsa",
    "pkg/id_ecdsa",
    "pkg/id_ed25519",
    "pkg/.netrc",
    "pkg/.pypirc",
    "pkg/.git-credentials",
    "pkg/credentials",
    "pkg/credentials.json",
    "pkg/my-service-account-42.json",
    "pkg/application_default_credentials.json",
    "pkg/.ssh/config",
    "pkg/conf/.aws/config",
    "pkg/.gcloud/x.json",
    "pkg/.azure/x",
    "pkg/.kube/config",
    "pkg/.docker/config.json",
    "pkg/.git/config",
    "pkg/.envrc",
    "pkg/AuthKey_42.p8",
    "pkg/putty.ppk",
    "pkg/.pgpass",
    "pkg/.config/gcloud/credentials.db",
    "pkg/.gnupg/private-keys-v1.d/x.key",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_secrets_never_ship_even_when_gitignore_negates_or_include_names_them(
    tmp_path: Path, secret: str
) -> None:
    build(
        tmp_path,
        {"pkg/__init__.py": "", secret: "s3cr3t", ".gitignore": f"!{secret}\n!pkg/*\n"},
        f'[tool.shipit]\ninclude = ["{secret}", "pkg/**"]\n',
    )
    files = shipped(tmp_path)
    assert "pkg/__init__.py" in files
    assert secret not in files
    assert project_at(tmp_path).unit_name_for(tmp_path / secret) is None


def test_a_secret_in_a_unit_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    build(tmp_path, ["pkg/__init__.py", "pkg/server.pem", ".env"])
    project = project_at(tmp_path)
    with caplog.at_level(logging.INFO, logger="shipit.project.rules"):
        project.units()
        project.units()
        assert project.unit_name_for(tmp_path / "pkg/server.pem") is None
    messages = [r.getMessage() for r in caplog.records if "secret" in r.getMessage()]
    assert messages == ["not shipping pkg/server.pem: it looks like a secret"]


def test_include_readmits_what_gitignore_drops_but_not_junk(tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            ".gitignore": "_version.py\ngenerated/\nfixtures/\n",
            "src/pkg/__init__.py": "",
            "src/pkg/_version.py": "",
            "src/pkg/other/_version.py": "",
            "src/pkg/generated/g.py": "",
            "src/pkg/generated/__pycache__/g.cpython-311.pyc": "",
            "src/pkg/generated/.state": "",
            "src/pkg/fixtures/keep.json": "",
            "src/pkg/fixtures/drop.json": "",
            "src/pkg/.well-known/a.json": "",
            "src/pkg/.well-known/.b.json": "",
        },
        """
        [tool.shipit]
        include = [
            "src/pkg/_version.py",
            "src/pkg/generated/",
            "src/pkg/fixtures/keep.json",
            "src/pkg/.well-known/",
        ]
        """,
    )
    assert shipped(tmp_path) == {
        "src/pkg/__init__.py",
        "src/pkg/_version.py",
        "src/pkg/generated/g.py",
        "src/pkg/fixtures/keep.json",
        "src/pkg/.well-known/a.json",
    }


def test_exclude_drops_files_and_folders_and_beats_include(tmp_path: Path) -> None:
    build(
        tmp_path,
        ["pkg/__init__.py", "pkg/big.bin", "pkg/scratch/a.py", "pkg/keep.py", "tool.py"],
        """
        [tool.shipit]
        exclude = ["pkg/big.bin", "scratch/", "tool.py"]
        include = ["tool.py"]
        """,
    )
    assert shipped(tmp_path) == {"pkg/__init__.py", "pkg/keep.py"}


@pytest.mark.parametrize(
    ("files", "folders"),
    [
        (["pkg/__init__.py", "src/pkg/__init__.py"], ["/pkg", "/src/pkg"]),
        (["foo.py", "foo/__init__.py"], ["/foo.py", "/foo"]),
    ],
)
def test_two_units_with_one_name_raise(
    tmp_path: Path, files: list[str], folders: list[str]
) -> None:
    build(tmp_path, files)
    with pytest.raises(UsageError) as raised:
        discover(load_config(tmp_path))
    for folder in folders:
        assert str(tmp_path) + folder in str(raised.value)


SAMPLE = {
    ".gitignore": "*.log\nbuild/\nsecret_dir/\n!keep.log\n",
    "pkg/.gitignore": "cache/\n",
    "pyproject.toml": '[tool.shipit]\ninclude = ["scripts/"]\nexclude = ["pkg/huge.bin"]\n',
    "pkg/__init__.py": "",
    "pkg/core.py": "",
    "pkg/app.log": "",
    "pkg/keep.log": "",
    "pkg/huge.bin": "",
    "pkg/.env": "",
    "pkg/cert.pem": "",
    "pkg/cache/x.py": "",
    "pkg/data/table.csv": "",
    "pkg/sub/__init__.py": "",
    "pkg/sub/deep/leaf.py": "",
    "pkg/sub/__pycache__/leaf.cpython-311.pyc": "",
    "pkg/test_core.py": "",
    "src/other/__init__.py": "",
    "src/other/mod.py": "",
    "src/tests/test_other.py": "",
    "src/single.py": "",
    "scripts/run.py": "",
    "loose/a.py": "",
    "tool.py": "",
    "setup.py": "",
    "tests/test_pkg.py": "",
    "docs/conf.py": "",
    "build/lib/pkg/core.py": "",
    ".venv/lib/site.py": "",
    "myenv/pyvenv.cfg": "",
    "myenv/lib/x.py": "",
    "node_modules/a/index.js": "",
}


def every_file(root: Path) -> list[Path]:
    return [Path(folder, name) for folder, _, names in os.walk(root) for name in names]


@pytest.mark.parametrize("walk_first", [True, False], ids=["after-units", "fresh"])
def test_unit_name_for_agrees_with_discover_for_every_file(
    tmp_path: Path, walk_first: bool
) -> None:
    build(tmp_path, SAMPLE)
    units = discover(load_config(tmp_path))
    expected = {unit.root / file: unit.name for unit in units for file in unit.files}
    assert set(expected.values()) == {"other", "pkg", "scripts", "single", "tool"}
    project = project_at(tmp_path)
    if walk_first:
        project.units()
    answers = {path: project.unit_name_for(path) for path in every_file(tmp_path)}
    assert answers == {path: expected.get(path) for path in every_file(tmp_path)}


def test_unit_name_for_paths_outside_and_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(tmp_path / "proj", ["pkg/__init__.py", "pkg/a.py"])
    project = project_at(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj")
    assert project.unit_name_for("pkg/a.py") == "pkg"
    assert project.unit_name_for("pkg/new_file.py") == "pkg"  # about to be created
    assert project.unit_name_for(tmp_path / "elsewhere.py") is None
    assert project.unit_name_for(tmp_path / "proj2" / "pkg" / "a.py") is None


def test_a_deleted_package_still_maps_to_its_unit(tmp_path: Path) -> None:
    build(tmp_path, ["pkg/__init__.py", "pkg/a.py"])
    project = project_at(tmp_path)
    project.units()
    (tmp_path / "pkg/a.py").unlink()
    (tmp_path / "pkg/__init__.py").unlink()
    (tmp_path / "pkg").rmdir()
    assert project.unit_name_for(tmp_path / "pkg/__init__.py") == "pkg"
    assert project_at(tmp_path).unit_name_for(tmp_path / "pkg/__init__.py") is None


def test_reload_ignores_reads_changed_gitignore_files(tmp_path: Path) -> None:
    build(tmp_path, ["pkg/__init__.py", "pkg/gen/a.py", "pkg/b.py"])
    project = project_at(tmp_path)
    assert project.unit_name_for(tmp_path / "pkg/gen/a.py") == "pkg"
    build(tmp_path, {"pkg/.gitignore": "gen/\nb.py\n"})
    project.reload_ignores()
    assert project.unit_name_for(tmp_path / "pkg/gen/a.py") is None
    assert project.unit_name_for(tmp_path / "pkg/b.py") is None
    assert shipped(tmp_path) == {"pkg/__init__.py"}


def test_source_and_watch_roots(tmp_path: Path) -> None:
    build(
        tmp_path,
        ["src/pkg/__init__.py", "lib/x.py"],
        '[tool.setuptools]\npackage-dir = {"" = "lib"}\n',
    )
    project = project_at(tmp_path)
    assert project.source_roots == (tmp_path, tmp_path / "src", tmp_path / "lib")
    assert project.watch_roots == (tmp_path,)


def dist_info(
    site: Path, name: str, folder: Path | None, top_level: str | None = None
) -> PathDistribution:
    """An installed distribution on disk; editable from ``folder`` when one is given."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if folder is not None:
        direct_url = {"url": folder.as_uri(), "dir_info": {"editable": True}}
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    if top_level is not None:
        (info / "top_level.txt").write_text(top_level)
    else:  # as a .pth editable install records itself: no import names in its files
        (info / "RECORD").write_text(f"_{name}.pth,,\n{info.name}/METADATA,,\n")
    return PathDistribution(info)


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, list[PathDistribution]]:
    """An app importing an editable sibling, which imports another; plus installs not to ship."""
    app = build(
        tmp_path / "app",
        {
            "main.py": "import os, mylib.core, app_plugins\nfrom pkg_plain import x\n",
            "app_pkg/__init__.py": "",
        },
    )
    build(
        tmp_path / "mylib",
        {
            "src/mylib/__init__.py": "from .core import f\n",
            "src/mylib/core.py": "import deeplib\n",
            "src/mylib/.gitignore": "*.tmp\n",
            "src/mylib/scratch.tmp": "",
            "tasks.py": "import unrelated\n",  # in the folder, not in the distribution
            "tests/test_core.py": "",
        },
    )
    build(tmp_path / "deeplib", {"deeplib.py": "import json\n"})
    build(tmp_path / "unused", {"unused/__init__.py": ""})
    site = tmp_path / "site"
    dists = [
        # The project itself, installed editable: never its own sibling.
        dist_info(site, "app", app, top_level="app_pkg\nmain\napp_plugins\n"),
        dist_info(site, "mylib", tmp_path / "mylib", top_level="mylib\n"),
        dist_info(site, "deeplib", tmp_path / "deeplib"),
        dist_info(site, "unused", tmp_path / "unused", top_level="unused\n"),
        dist_info(site, "pkg-plain", None, top_level="pkg_plain\n"),
    ]
    return app, dists


def test_editable_units_follow_imports_through_siblings(workspace) -> None:  # type: ignore[no-untyped-def]
    app, dists = workspace
    units = editable_units(load_config(app), dists)
    assert [(u.name, u.origin, u.files) for u in units] == [
        ("deeplib", "editable:deeplib", ("deeplib.py",)),
        ("mylib", "editable:mylib", ("mylib/__init__.py", "mylib/core.py")),
    ]
    assert units[1].root == app.parent / "mylib" / "src"


def test_project_ships_and_watches_editable_siblings(workspace) -> None:  # type: ignore[no-untyped-def]
    app, dists = workspace
    project = Project(load_config(app), distributions=dists)
    assert [(u.name, u.origin) for u in project.units()] == [
        ("app_pkg", "project"),
        ("deeplib", "editable:deeplib"),
        ("main", "project"),
        ("mylib", "editable:mylib"),
    ]
    assert set(project.watch_roots) == {app, app.parent / "mylib", app.parent / "deeplib"}
    assert project.unit_name_for(app.parent / "mylib/src/mylib/core.py") == "mylib"
    assert project.unit_name_for(app.parent / "mylib/src/mylib/scratch.tmp") is None
    assert project.unit_name_for(app.parent / "mylib/tasks.py") is None
    assert project.unit_name_for(app.parent / "unused/unused/__init__.py") is None


def test_a_sibling_unit_named_like_a_project_unit_raises(workspace) -> None:  # type: ignore[no-untyped-def]
    app, dists = workspace
    build(app.parent / "mylib", {"src/app_pkg/__init__.py": ""})
    (app.parent / "site/mylib-1.0.dist-info/top_level.txt").write_text("mylib\napp_pkg\n")
    with pytest.raises(UsageError, match="app_pkg"):
        Project(load_config(app), distributions=dists).units()


def test_a_project_module_shadows_a_sibling_of_that_name(workspace) -> None:  # type: ignore[no-untyped-def]
    app, dists = workspace
    build(app, {"deeplib.py": ""})  # mylib's "import deeplib" finds this one first
    units = Project(load_config(app), distributions=dists).units()
    assert {u.name: u.origin for u in units}["deeplib"] == "project"


def test_an_unrelated_editable_install_is_not_read(workspace) -> None:  # type: ignore[no-untyped-def]
    """Its pyproject.toml is parsed only once the code imports a name it installs: a broken
    one in a checkout the project does not use cannot fail the sync."""
    app, dists = workspace
    (app.parent / "unused" / "pyproject.toml").write_text("[tool.shipit\nbroken")
    units = Project(load_config(app), distributions=dists).units()
    assert "unused" not in {u.name for u in units}


def test_an_imported_editable_install_with_a_broken_config_fails(workspace) -> None:  # type: ignore[no-untyped-def]
    app, dists = workspace
    (app.parent / "mylib" / "pyproject.toml").write_text("[tool.shipit\nbroken")
    with pytest.raises(ConfigError, match="editable install mylib at"):
        Project(load_config(app), distributions=dists).units()
