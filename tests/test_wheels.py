"""shipit.install.wheels: local projects found, built for real with ``build``, and wheels fetched
with ``pip download`` for another node's Python and platform, from a local folder: no network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shipit import plan
from shipit.config import PipOptions, load_config
from shipit.errors import BuildFailed, ConfigError, DownloadFailed
from shipit.install.wheels import (
    LocalProject,
    build_wheel,
    code_only,
    download,
    local_projects,
    ships_as_code,
    wheel_version,
)

from .helpers import dist_project


@pytest.fixture(autouse=True)
def no_pip_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


def lib(folder: Path, name: str, version: str = "0.4.0", setup: str | None = None) -> Path:
    dist_project(folder, name, version, init="VALUE = 1\n")
    if setup is not None:
        (folder / "setup.py").write_text(setup)
    return folder


def test_local_projects_come_from_path_dependencies_build_wheels_and_the_project(
    tmp_path: Path,
) -> None:
    lib_a, lib_b = lib(tmp_path / "lib_a", "lib-a"), lib(tmp_path / "lib_b", "lib_b", "2.0")
    app = lib(tmp_path / "app", "app", "1.0")
    (app / "pyproject.toml").write_text(
        (app / "pyproject.toml").read_text().replace('version = "1.0"', 'version = "1.0"\n'
        f'dependencies = ["lib-a @ {lib_a.as_uri()}", "numpy>=1",\n'
        '  "remote @ https://example.com/remote-1.0-py3-none-any.whl",\n'
        "  \"winonly @ file:///nowhere ; sys_platform == 'win32'\"]\n"
        "[tool.shipit]\ninstall-project = true\nbuild-wheels = ['../lib_b']")
    )  # fmt: skip

    projects, skipped = local_projects(load_config(app))

    assert projects == [
        LocalProject("app", app, "install-project", "1.0"),
        LocalProject("lib-a", lib_a, "path dependency", "0.4.0"),
        LocalProject("lib-b", lib_b, "[tool.shipit] build-wheels", "2.0"),
    ]
    assert skipped == [
        "remote: a URL requirement (https://example.com/remote-1.0-py3-none-any.whl); not built"
    ]


def test_a_path_dependency_that_is_not_a_project_is_a_config_error(tmp_path: Path) -> None:
    app = lib(tmp_path / "app", "app")
    missing = (tmp_path / "gone").as_uri()
    text = (app / "pyproject.toml").read_text()
    (app / "pyproject.toml").write_text(f'{text}dependencies = ["gone @ {missing}"]\n')
    with pytest.raises(ConfigError, match=r"path dependency gone: .*gone is not a project folder"):
        local_projects(load_config(app))


def test_a_build_wheels_name_not_installed_from_a_folder_is_a_config_error(
    tmp_path: Path,
) -> None:
    app = lib(tmp_path / "app", "app")
    text = (app / "pyproject.toml").read_text()
    (app / "pyproject.toml").write_text(f"{text}[tool.shipit]\nbuild-wheels = ['packaging']\n")
    with pytest.raises(ConfigError, match="'packaging': not installed here from a local folder"):
        local_projects(load_config(app))


def test_a_project_installed_as_a_wheel_does_not_ship_as_code(tmp_path: Path) -> None:
    app = lib(tmp_path / "app", "app")
    (app / "helpers.py").write_text("X = 1\n")
    assert {p.name for p in plan(app).packs} == {"app", "helpers"}
    text = (app / "pyproject.toml").read_text()
    (app / "pyproject.toml").write_text(f"{text}[tool.shipit]\ninstall-project = true\n")

    packs, problems = code_only(plan(app))

    assert (packs, problems) == ((), ())


def test_build_makes_a_wheel_and_a_broken_project_says_why(tmp_path: Path) -> None:
    good = LocalProject("lib-a", lib(tmp_path / "lib_a", "lib-a"), "test")
    wheel = build_wheel(good, tmp_path / "out")
    assert wheel.name == "lib_a-0.4.0-py3-none-any.whl"
    assert wheel_version(wheel) == ("lib-a", "0.4.0")

    setup = "raise SystemExit('the backend says: boom')\n"
    broken = LocalProject("bad", lib(tmp_path / "bad", "bad", setup=setup), "test")
    with pytest.raises(BuildFailed) as info:
        build_wheel(broken, tmp_path / "out")
    assert f"cannot build a wheel of {broken.folder}" in str(info.value)
    assert "the backend says: boom" in str(info.value)


def test_download_fetches_wheels_for_another_python_and_platform(tmp_path: Path) -> None:
    wheel = build_wheel(LocalProject("lib-a", lib(tmp_path / "lib_a", "lib-a"), "test"), tmp_path)
    arm = {
        "python": "3.12",
        "implementation": "cp",
        "abis": ["cp312", "abi3", "none"],
        "platforms": ["manylinux_2_28_aarch64", "linux_aarch64"],
    }
    offline = PipOptions(no_index=True, find_links=(str(wheel.parent),))

    files = download(["lib-a==0.4.0"], arm, offline, tmp_path / "arm")

    assert [f.name for f in files] == [wheel.name]  # a pure wheel fits any platform
    with pytest.raises(DownloadFailed) as info:
        download(["lib-a==9.9"], arm, offline, tmp_path / "arm")
    message = str(info.value)
    assert "the client could not fetch wheels of lib-a==9.9 for cp3.12 on manylinux_2_28" in message
    assert "No matching distribution found for lib-a==9.9" in message


def test_build_wheels_names_an_editable_sibling_which_then_does_not_ship_as_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sibling = lib(tmp_path / "sibling", "sib-lib", "0.9")
    info = tmp_path / "site" / "sib_lib-0.9.dist-info"  # what `pip install -e` leaves
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sib-lib\nVersion: 0.9\n")
    editable = {"url": sibling.as_uri(), "dir_info": {"editable": True}}
    (info / "direct_url.json").write_text(json.dumps(editable))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    app = lib(tmp_path / "app", "app")
    text = (app / "pyproject.toml").read_text()
    (app / "pyproject.toml").write_text(f"{text}[tool.shipit]\nbuild-wheels = ['sib-lib']\n")

    projects, _ = local_projects(load_config(app))

    assert projects == [LocalProject("sib-lib", sibling, "[tool.shipit] build-wheels", "0.9")]
    as_code = ships_as_code(load_config(app))
    assert (as_code("project"), as_code("editable:Sib_Lib"), as_code("editable:other")) == (
        True,
        False,
        True,
    )
