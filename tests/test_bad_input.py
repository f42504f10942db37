"""Bad input as a user meets it: one `ERROR` line naming the culprit, exit 2, no traceback.

The command runs in this process (``cli``); tests/test_cli.py runs it as a real process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import Cluster, Project, cli, shipit


def assert_one_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The ERROR line of a refused command, checked for each fragment."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR ")]
    assert len(errors) == 1, result.stderr
    assert [line for line in result.stderr.splitlines() if not line.startswith("TIP ")] == errors
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_a_path_that_does_not_exist(project: Project) -> None:
    missing = project.root / "nothere"
    assert_one_error(cli("sync", str(missing), "--dry-run"), f"not found: {missing}")


def test_a_path_that_is_a_file(project: Project) -> None:
    file = project.root / "helpers.py"
    assert_one_error(cli("sync", str(file), "--dry-run"), f"{file} is a file")


def test_a_folder_with_nothing_to_ship(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no code here\n")
    (tmp_path / "data").mkdir()  # no __init__.py: not a package
    (tmp_path / "data" / "x.py").write_text("X = 1\n")
    result = cli("sync", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1", "--timeout", "1")
    assert_one_error(result, f"nothing to ship in {tmp_path}")


def _loop(pkg: Path) -> None:
    (pkg / "a.py").symlink_to("b.py")
    (pkg / "b.py").symlink_to("a.py")


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda pkg: (pkg / "gone.py").symlink_to("nowhere.py"), "gone.py: broken link"),
        (_loop, ": link loop"),
        (lambda pkg: (pkg / "out.py").symlink_to(pkg.parents[1] / "x.py"), "out.py: link to"),
        (lambda pkg: (pkg / "data").symlink_to(pkg.parents[1]), "data: link to"),
        (lambda pkg: (pkg / "settings.py").symlink_to("../.env"), "which looks like a secret"),
    ],
    ids=["broken", "loop", "file-outside", "folder-outside", "to-a-secret"],
)
def test_links_that_cannot_ship(project: Project, make, fragment: str) -> None:  # type: ignore[no-untyped-def]
    (project.root.parent / "x.py").write_text("SECRET = 1\n")
    (project.root / ".env").write_text("SECRET = 1\n")
    make(project.root / project.name)
    line = assert_one_error(cli("sync", str(project.root), "--dry-run"), fragment)
    assert "SECRET" not in line


def test_a_link_inside_the_project_ships_its_target(project: Project) -> None:
    (project.root / project.name / "alias.py").symlink_to("sub.py")
    result = cli("sync", str(project.root), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"  {project.name}/alias.py" in result.stdout.splitlines()


def test_a_left_out_broken_link_is_no_error(project: Project) -> None:
    (project.root / project.name / ".#sub.py").symlink_to("root@host.123")  # an editor's lock
    assert cli("sync", str(project.root), "--dry-run").returncode == 0


def test_a_file_name_that_is_not_utf8(project: Project) -> None:
    folder = os.fsencode(project.root / project.name)
    with open(folder + b"/bad\xff.py", "w") as f:
        f.write("X = 1\n")
    assert_one_error(
        cli("sync", str(project.root), "--dry-run"), "bad\\xff.py: its name is not UTF-8"
    )


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions apply, even to root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: root reads every file")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


@pytest.mark.cluster
@pytest.mark.parametrize("what", ["file", "folder"])
def test_unreadable_files_and_folders(project: Project, what: str) -> None:
    target = project.write(
        "{pkg}/private/__init__.py" if what == "folder" else "{pkg}/locked.py", "X = 1\n"
    )
    locked = target.parent if what == "folder" else target
    locked.chmod(0)
    try:
        command = [sys.executable, "-m", "shipit", "sync", str(project.root), "--dry-run"]
        prefix = _without_root_powers()
        result = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=60)
    finally:
        locked.chmod(0o755)
    assert_one_error(result, f"{locked.name}: Permission denied")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("include = 'src'", "[tool.shipit] include must be a list of strings, not 'src'"),
        ("no-index = 'yes'", "[tool.shipit] no-index must be true or false, not 'yes'"),
        ("pip-timeout = -1", "[tool.shipit] pip-timeout must be a number of seconds, not -1"),
        ("max-unit-size = 'lots'", "[tool.shipit] max-unit-size must be a size"),
        ("warn-file-size = true", "[tool.shipit] warn-file-size must be a size"),
        ("severity = ['numpy']", "[tool.shipit] severity must map package names"),
        ("exclude = [", "cannot read"),
    ],
)
def test_malformed_configuration_names_the_key_and_the_type(
    project: Project, line: str, message: str
) -> None:
    (project.root / "pyproject.toml").write_text(f"[tool.shipit]\n{line}\n")
    assert_one_error(cli("sync", str(project.root), "--dry-run"), message)


@pytest.mark.parametrize(
    ("text", "size"),
    [("100MiB", 100 * 2**20), ("20 MB", 20 * 10**6), ("1.5kib", 1536), ("512", 512), (4096, 4096)],
)
def test_sizes_read_with_their_units(text: object, size: int) -> None:
    from shipit.config import parse_size

    assert parse_size(text) == size


@pytest.mark.cluster
def test_a_unit_over_the_size_limit_is_refused_and_nothing_is_uploaded(
    local_cluster: Cluster, project: Project
) -> None:
    (project.root / "pyproject.toml").write_text(
        "[tool.shipit]\nmax-unit-size = '64 KiB'\nwarn-file-size = '16KiB'\n"
    )
    (project.root / project.name / "weights.bin").write_bytes(b"\0" * 70_000)
    (project.root / project.name / "table.csv").write_bytes(b"1," * 10_000)
    result = shipit("sync", str(project.root), "--scheduler", local_cluster.scheduler_address)
    line = assert_one_error(result, f"{project.name} (", "over the 64.0 KiB limit")
    assert line.index(f"{project.name}/weights.bin (68.4 KiB)") < line.index("table.csv (19.5 KiB)")

    def held(dask_scheduler):  # type: ignore[no-untyped-def]
        return sorted(getattr(dask_scheduler.plugins.get("shipit"), "units", {}))

    assert local_cluster.client.run_on_scheduler(held) == []

    (project.root / project.name / "weights.bin").unlink()
    result = shipit("sync", str(project.root), "--scheduler", local_cluster.scheduler_address)
    assert result.returncode == 0, result.stderr
    assert f"large file(s) ship to every node: {project.name}/table.csv (19.5 KiB)" in result.stderr
    assert local_cluster.client.run_on_scheduler(held) == ["helpers", project.name]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sync", "--timeout", "0"], "Invalid value for '--timeout'"),
        (["sync", "--bogus"], "No such option '--bogus'"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_command_line_mistakes_are_one_line_too(args: list[str], message: str) -> None:
    assert_one_error(cli(*args), message)
