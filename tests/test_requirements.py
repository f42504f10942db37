"""shipit.install.requirements: what to install where, from rows that shipit.parity.versions
makes; no cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipit.config import PipOptions, load_config
from shipit.errors import BadPipOption, BadRequirement, ConfigError
from shipit.install.requirements import (
    SCHEDULER,
    group,
    installed_version,
    needs,
    pin,
    stale,
)
from shipit.parity.versions import compare
from shipit.report import VersionRow

W1, W2, W3 = "tcp://10.0.0.1:4001", "tcp://10.0.0.1:4002", "tcp://10.0.0.2:4003"


def pkg(version: str, loaded: str | None = None) -> dict[str, Any]:
    return {"version": version, "imported": loaded is not None, "loaded": loaded}


def node(**packages: Any) -> dict[str, Any]:
    facts = {"python": "3.11.7", "implementation": "cpython", "platform": "linux"}
    return {**facts, "machine": "x86_64", "packages": packages, "units": None}


def rows(client: dict, scheduler: dict, workers: dict, wanted: dict) -> tuple[VersionRow, ...]:
    return compare(client, scheduler, workers, wanted)


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("numpy", "2.1.0", "numpy==2.1.0"),
        ("Foo_Bar.baz", "1.0.post1", "Foo_Bar.baz==1.0.post1"),
        ("mylib", "0.1.0+local.abc", "mylib==0.1.0+local.abc"),
    ],
)
def test_pin_makes_an_exact_requirement(name: str, version: str, expected: str) -> None:
    assert pin(name, version) == expected


@pytest.mark.parametrize(
    ("name", "version", "reason"),
    [
        ("-e", "1.0", "not a distribution name"),
        ("--index-url=https://evil.example", "1.0", "not a distribution name"),
        ("https://evil.example/x.whl", "1.0", "not a distribution name"),
        ("../mylib", "1.0", "not a distribution name"),
        ("pkg; os_name=='nt'", "1.0", "not a distribution name"),
        ("pkg[extra]", "1.0", "not a distribution name"),
        ("pkg", "1.0 --pre", "not a version pip understands"),
        ("pkg", "unknown", "not a version pip understands"),
        ("pkg", "1.0; --trusted-host=x", "not a version pip understands"),
    ],
)
def test_pin_refuses_options_urls_paths_and_odd_versions(
    name: str, version: str, reason: str
) -> None:
    with pytest.raises(BadRequirement, match=reason) as info:
        pin(name, version)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize(
    ("cell", "installed", "is_stale"),
    [
        ("2.0.0", "2.0.0", False),
        ("missing", None, False),
        ("2.0.0 installed, 1.0.0 loaded", "2.0.0", True),
        ("2.0.0, files changed since loaded", "2.0.0", True),
    ],
)
def test_cells_read_as_versions(cell: str, installed: str | None, is_stale: bool) -> None:
    assert (installed_version(cell), stale(cell)) == (installed, is_stale)


def test_missing_and_mismatched_nodes_get_the_client_version() -> None:
    found = rows(
        node(instpkg=pkg("2.0.0")),
        node(instpkg=pkg("2.0.0")),
        {
            W1: node(),
            W2: node(instpkg=pkg("1.0.0", loaded="1.0.0")),
            W3: node(instpkg=pkg("2.0.0")),
        },
        {"instpkg": True},
    )
    assert needs(found, {"instpkg": True}).by_node == {
        W1: ("instpkg==2.0.0",),
        W2: ("instpkg==2.0.0",),
    }


def test_the_scheduler_is_a_node_too_and_upgraded_but_stale_nodes_need_no_install() -> None:
    found = rows(
        node(instpkg=pkg("2.0.0")),
        node(),
        {W1: node(instpkg=pkg("2.0.0", loaded="1.0.0"))},
        {"instpkg": True},
    )
    assert needs(found, {"instpkg": True}).by_node == {SCHEDULER: ("instpkg==2.0.0",)}


def test_optional_packages_are_pinned_where_present_but_not_installed_where_absent() -> None:
    found = rows(
        node(numpy=pkg("2.1.0")),
        node(numpy=pkg("2.1.0")),
        {W1: node(), W2: node(numpy=pkg("2.0.0"))},
        {"numpy": False},
    )
    assert needs(found, {"numpy": False}).by_node == {W2: ("numpy==2.1.0",)}


def test_a_package_the_client_lacks_is_skipped_with_the_reason() -> None:
    workers = {W1: node(ghost=pkg("1.0")), W2: node()}
    found = rows(node(), node(ghost=pkg("1.0")), workers, {"ghost": True})
    result = needs(found, {"ghost": True})
    assert result.by_node == {}
    assert result.skipped == ("ghost: not installed on the client, so no version to pin",)


def test_a_local_project_wins_over_the_client_version_and_missing_everywhere_means_all() -> None:
    found = rows(
        node(mylib=pkg("0.1.0")),
        node(mylib=pkg("0.2.0")),
        {W1: node(mylib=pkg("0.2.0")), W2: node()},
        {"mylib": True},
    )
    local = {"mylib": "0.2.0", "fresh": "1.0"}
    assert needs(found, {"mylib": True}, local).by_node == {
        SCHEDULER: ("fresh==1.0",),
        W1: ("fresh==1.0",),
        W2: ("fresh==1.0", "mylib==0.2.0"),
    }


def env(key: str, host: str = "h1") -> dict[str, Any]:
    return {"key": key, "host": host, "prefix": f"/envs/{key}"}


def test_one_group_per_environment_run_on_a_worker_covering_every_member() -> None:
    environments = {W1: env("a"), W2: env("a"), W3: env("b", "h2"), SCHEDULER: env("a")}
    by_node = {W1: ("x==1",), W2: ("x==1", "y==2"), W3: ("x==1",)}
    groups, unknown = group(by_node, environments)
    assert unknown == []
    assert [(g.key, g.nodes, g.ran_on, g.requirements) for g in groups] == [
        ("a", (W1, W2, SCHEDULER), W1, ("x==1", "y==2")),
        ("b", (W3,), W3, ("x==1",)),
    ]


def test_a_scheduler_alone_in_its_environment_runs_its_own_pip_and_silent_nodes_are_named() -> None:
    groups, unknown = group({SCHEDULER: ("x==1",), W2: ("x==1",)}, {SCHEDULER: env("s")})
    assert [(g.nodes, g.ran_on) for g in groups] == [((SCHEDULER,), SCHEDULER)]
    assert unknown == [W2]


def test_pip_options_come_from_the_config_unless_given(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.shipit]\n"
        'index-url = "https://mirror.example/simple"\n'
        'find-links = ["wheels"]\n'
        "no-index = true\n"
        "pip-timeout = 30\n"
    )
    config = load_config(tmp_path)
    assert config.pip_timeout == 30.0
    assert PipOptions.resolve(config).args() == [
        "--no-index",
        "--index-url", "https://mirror.example/simple",
        "--find-links", str(tmp_path / "wheels"),
    ]  # fmt: skip
    given = PipOptions.resolve(config, find_links=["https://wheels.example/"], no_index=False)
    assert given.args() == [
        "--index-url", "https://mirror.example/simple",
        "--find-links", "https://wheels.example/",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"index_url": "--trusted-host=evil"}, "--index-url '--trusted-host=evil': not a URL"),
        ({"index_url": "mirror.example"}, "an index must be an http, https or file URL"),
        ({"extra_index_urls": ("ftp://x",)}, "an index must be an http, https or file URL"),
        ({"find_links": ("-r/etc/passwd",)}, "--find-links '-r/etc/passwd': not a URL or a path"),
        ({"find_links": ("a\nb",)}, "not a URL or a path"),
    ],
)
def test_pip_options_refuse_what_pip_would_read_as_another_option(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadPipOption, match=message.replace("+", r"\+")):
        PipOptions(**options)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('no-index = "yes"', "[tool.shipit] no-index must be true or false, not 'yes'"),
        ("index-url = 3", "[tool.shipit] index-url must be a non-empty string, not 3"),
        ("pip-timeout = -1", "[tool.shipit] pip-timeout must be a number of seconds, not -1"),
        ("pip-timeout = true", "[tool.shipit] pip-timeout must be a number of seconds, not True"),
        ('find-links = "wheels"', "[tool.shipit] find-links must be a list of strings"),
        ("install-projects = true", "(did you mean 'install_project'?)"),
    ],
)
def test_install_keys_in_the_config_are_checked(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.shipit]\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert message in str(info.value)
