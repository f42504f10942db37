"""Windows and macOS file rules (issue 11, items 5 and 6), for real where this machine can run
them: stores on FAT and exFAT (names compare case-insensitively, no hard links), a content at
ext4's 65,000-link limit (EMLINK), undeletable files (``chattr +i``, the stand-in for Windows
refusing read-only and open files), ten nodes starting at once on one host. What needs a
Windows worker (reserved names, 260 characters) is checked against the scheduler with a
worker that says it runs Windows, and against the node's own checks."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import dask.config
import pytest
from distributed import Client, LocalCluster

import shipit
from shipit.errors import ShipitError
from shipit.node import protocol
from shipit.node.hoststore import HostStore
from shipit.node.plugins import agent_state
from shipit.project.pack import file_digest, unit_digest

from .helpers import Project
from .nodeenvs import Mounted, exfat_image, ext4_image, fat_image, fill_links, immutable, wait_until

# Workers cannot import this test module: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


# --------------------------------------------------------------------------------------------
# What a node holds, seen from inside it


def _node_view(dask_worker: Any) -> dict[str, Any] | None:
    """Per unit, the digest the node reports, the digest of each file in the folder it
    imports from, and that folder; the node's pin folder; None before the agent is set up."""
    import hashlib as _hashlib
    import os as _os

    store = getattr(dask_worker, "_shipit_store", None)
    if store is None:
        return None
    units = {}
    for name, unit in store.units.items():
        files = {}
        for folder, dirs, names in _os.walk(unit["path"]):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for file in names:
                path = _os.path.join(folder, file)
                with open(path, "rb") as f:
                    data = f.read()
                rel = _os.path.relpath(path, unit["path"]).replace(_os.sep, "/")
                files[rel] = (_hashlib.sha256(data).hexdigest(), _os.stat(path).st_nlink)
        units[name] = {"digest": unit["digest"], "files": files, "path": unit["path"]}
    return {
        "units": units,
        "node": store.node.path if store.node is not None else None,
        "home": store.host.home if store.host is not None else None,
        "pid": _os.getpid(),
    }


def _views(client: Client) -> dict[str, dict[str, Any]]:
    return client.run(_node_view)  # type: ignore[no-any-return]


def _holds_what_it_reports(client: Client, under: Path) -> dict[str, dict[str, Any]]:
    """No node reports a digest over files that are not that version's, whole; every unit's
    folder lies under ``under`` (the file system the test is about)."""
    views = _views(client)
    for address, view in views.items():
        assert view is not None, f"{address}: no shipit agent"
        for name, unit in view["units"].items():
            manifest = {rel: digest for rel, (digest, _) in unit["files"].items()}
            assert unit_digest(name, manifest) == unit["digest"], (address, name, sorted(manifest))
            assert Path(unit["path"]).is_relative_to(under), (address, unit["path"])
    return views


def _read(module: str, attribute: str = "VALUE") -> Any:
    import importlib

    return getattr(importlib.import_module(module), attribute)


def _importable(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        return False
    return True


def _on_each(client: Client, func: Any, *args: Any) -> list[Any]:
    """``func(*args)`` as a real task on each worker, in the workers' order."""
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    futures = [
        client.submit(func, *args, pure=False, workers=[w], allow_other_workers=False)
        for w in workers
    ]
    return client.gather(futures)  # type: ignore[no-any-return]


def _digest_of(project: Project) -> str:
    return next(p.digest for p in shipit.plan(project.root).packs if p.name == project.name)


def _sync(client: Client, project: Project) -> Any:
    report = shipit.sync(client, project.root, install=False, strict=False)
    assert report.ok, report.failures
    return report


@contextlib.contextmanager
def _cluster(
    store: Path, workers: int = 2, local_directory: Path | None = None
) -> Iterator[tuple[LocalCluster, Client]]:
    """A LocalCluster of process workers (nanny-started: they switch their modules) whose
    shipit store is under ``store``."""
    with (
        dask.config.set({"shipit.directory": str(store)}),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            local_directory=str(local_directory) if local_directory else None,
        ) as lc,
        Client(lc) as client,
    ):
        yield lc, client


def _renames_folders_whole(root: Path) -> bool:
    """Whether the driver keeps a folder's files when it renames the folder (fusefat 0.1a
    does not: they are gone, and fsck reclaims their clusters)."""
    (root / ".probe" / "sub").mkdir(parents=True)
    (root / ".probe" / "sub" / "f.py").write_text("x\n")
    os.rename(root / ".probe", root / ".probed")
    whole = (root / ".probed" / "sub" / "f.py").is_file()
    shutil.rmtree(root / ".probed")
    return whole


@dataclass
class CaseInsensitive:
    mounted: Mounted
    lc: LocalCluster
    client: Client


@contextlib.contextmanager
def _case_insensitive(kind: str, tmp_path: Path, workers: int = 2) -> Iterator[CaseInsensitive]:
    """Workers whose store is on a FAT or exFAT image. exFAT gives every file mode 0o777, so
    shipit will not share a store there (anyone could write to it): each node keeps a private
    one under its Dask folder, which is on the image too."""
    image = fat_image if kind == "fat" else exfat_image
    with image(tmp_path / kind) as mounted:
        if not _renames_folders_whole(mounted.path):
            pytest.skip(f"{mounted.driver} loses a folder's files when it renames the folder")
        scratch = mounted.path / "scratch" if kind == "exfat" else None
        with _cluster(mounted.path / "store", workers, scratch) as (lc, client):
            yield CaseInsensitive(mounted, lc, client)


# --------------------------------------------------------------------------------------------
# 1. Case-insensitive, link-less stores with real workers


@pytest.mark.parametrize("kind", ["fat", "exfat"])
def test_edits_case_only_renames_and_file_folder_changes_on_a_case_insensitive_store(
    kind: str, project: Project, tmp_path: Path
) -> None:
    project.write("{pkg}/Model.py", "WHO = 'upper'\n")
    project.write("{pkg}/templates", "one file\n")
    project.write(
        "{pkg}/data.py",
        """
        from importlib import resources

        def read(*parts):
            return resources.files(__package__).joinpath(*parts).read_text()
        """,
    )
    pkg, read = project.name, project.module("{pkg}.data").read
    with _case_insensitive(kind, tmp_path) as ci:
        client, mount = ci.client, ci.mounted.path
        _sync(client, project)
        assert _on_each(client, _read, f"{pkg}.sub") == [1, 1]
        views = _holds_what_it_reports(client, mount)
        for view in views.values():  # no links here: each file is a copy of its own
            assert {n for _, n in view["units"][pkg]["files"].values()} == {1}
        if kind == "fat":  # one store shared by both nodes, on the image
            assert {v["home"] for v in views.values()} == {
                str(mount / "store" / f"shipit-{os.getuid()}-v2")
            }
        else:  # exFAT is open to every user: a private store per node, on the image
            assert len({v["home"] for v in views.values()}) == 2
            assert all(Path(v["home"]).is_relative_to(mount / "scratch") for v in views.values())

        project.write("{pkg}/sub.py", "VALUE = 2\n")  # an edit
        _sync(client, project)
        assert _on_each(client, _read, f"{pkg}.sub") == [2, 2]
        _holds_what_it_reports(client, mount)

        # Model.py -> model.py: tasks import the new name, and the old one is gone.
        os.rename(project.root / pkg / "Model.py", project.root / pkg / "model.py")
        project.write("{pkg}/model.py", "WHO = 'lower'\n")
        _sync(client, project)
        assert _on_each(client, _read, f"{pkg}.model", "WHO") == ["lower", "lower"]
        assert _on_each(client, _importable, f"{pkg}.Model") == [False, False]
        views = _holds_what_it_reports(client, mount)
        for view in views.values():
            assert f"{pkg}/model.py" in view["units"][pkg]["files"]
            assert f"{pkg}/Model.py" not in view["units"][pkg]["files"]

        # A data file that becomes a folder, and back.
        project.remove("{pkg}/templates")
        project.write("{pkg}/templates/a.html", "<p>a</p>\n")
        _sync(client, project)
        assert _on_each(client, read, "templates", "a.html") == ["<p>a</p>\n"] * 2
        _holds_what_it_reports(client, mount)
        project.remove("{pkg}/templates/a.html")
        (project.root / pkg / "templates").rmdir()
        project.write("{pkg}/templates", "a file again\n")
        _sync(client, project)
        assert _on_each(client, read, "templates") == ["a file again\n"] * 2
        assert _on_each(client, _read, f"{pkg}.model", "WHO") == ["lower", "lower"]
        views = _holds_what_it_reports(client, mount)
        assert {v["units"][pkg]["digest"] for v in views.values()} == {_digest_of(project)}


def test_a_driver_that_loses_files_when_it_renames_a_folder_gets_no_version_reported(
    project: Project, tmp_path: Path
) -> None:
    """fusefat drops a folder's files when it renames the folder: every node says so, and
    none reports a digest for what is left."""
    with fat_image(tmp_path / "fat") as fat:
        if _renames_folders_whole(fat.path):
            pytest.skip(f"{fat.driver} renames folders whole: the tests above run on it")
        with _cluster(fat.path / "store") as (_, client):
            report = shipit.sync(client, project.root, install=False, strict=False)
            assert sorted(report.failures) == sorted(client.scheduler_info()["workers"])
            for error in report.failures.values():
                assert "this file system lost" in error, error
                assert "it cannot hold shipped files" in error, error
            views = _views(client)
            assert [v["units"] for v in views.values()] == [{}, {}]
            home = Path(next(iter(views.values()))["home"])
            assert list((home / "versions").iterdir()) == []


# --------------------------------------------------------------------------------------------
# 2. Two paths one file system takes for one


def test_two_paths_differing_only_in_case_fail_cleanly_and_the_node_keeps_its_code(
    project: Project, tmp_path: Path
) -> None:
    pkg = project.name
    with _case_insensitive("exfat", tmp_path) as ci:
        client, mount = ci.client, ci.mounted.path
        _sync(client, project)
        good = _digest_of(project)

        project.write("{pkg}/sub.py", "VALUE = 2\n")
        project.write("{pkg}/Data.txt", "upper\n")  # the client's disk tells them apart
        project.write("{pkg}/data.txt", "lower\n")
        report = shipit.sync(client, project.root, install=False, strict=False)
        assert not report.ok
        workers = sorted(client.scheduler_info()["workers"])
        assert sorted(report.failures) == workers
        for error in report.failures.values():
            assert f"{pkg}/Data.txt and {pkg}/data.txt differ only in case" in error, error
        # Each node keeps its last good code, and says so.
        assert _on_each(client, _read, f"{pkg}.sub") == [1, 1]
        views = _holds_what_it_reports(client, mount)
        assert {v["units"][pkg]["digest"] for v in views.values()} == {good}

        project.remove("{pkg}/data.txt")  # the user's fix
        _sync(client, project)
        assert _on_each(client, _read, f"{pkg}.sub") == [2, 2]
        views = _holds_what_it_reports(client, mount)
        assert {v["units"][pkg]["digest"] for v in views.values()} == {_digest_of(project)}


# --------------------------------------------------------------------------------------------
# 3. Links that fail: EMLINK, and a late worker whose store has nothing


def _contents(files: dict[str, bytes]) -> tuple[dict[str, str], dict[str, bytes]]:
    manifest = {rel: file_digest(data) for rel, data in files.items()}
    return manifest, {file_digest(data): data for data in files.values()}


def _folder_files(folder: str) -> dict[str, tuple[bytes, int]]:
    found = {}
    for path in Path(folder).rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            found[path.relative_to(folder).as_posix()] = (path.read_bytes(), path.stat().st_nlink)
    return found


def test_a_content_at_the_ext4_link_limit_is_copied_and_nothing_is_fetched_in_vain(
    tmp_path: Path,
) -> None:
    with ext4_image(tmp_path) as ext4:
        (ext4.path / "store").mkdir(mode=0o700)
        host = HostStore(str(ext4.path / "store"), shared=True)
        asked: list[str] = []

        def content(digest: str) -> bytes:
            asked.append(digest)
            return by_digest[digest]

        # Every empty __init__.py of every unit and version is one inode: drive it to the cap.
        manifest, by_digest = _contents({"u/__init__.py": b""})
        host.build("u", "0" * 64, manifest, content)
        empty = host.content_path(file_digest(b""))
        filled = fill_links(Path(empty), ext4.path / "links")
        assert filled.error is not None and filled.error.errno == errno.EMLINK
        asked.clear()

        files = {"u/__init__.py": b"", "u/b/__init__.py": b"", "u/a.py": b"A = 1\n"}
        manifest, by_digest = _contents(files)
        folder = host.build("u", "1" * 64, manifest, content)
        assert asked == [file_digest(b"A = 1\n")]  # only what the store did not hold
        held = _folder_files(folder)
        assert {rel: data for rel, (data, _) in held.items()} == files
        assert held["u/__init__.py"][1] == held["u/b/__init__.py"][1] == 1  # copies
        assert held["u/a.py"][1] == 2  # still a link: one content at its limit, not the store
        assert host.links
        assert os.stat(empty).st_nlink == 65_000


def test_a_linkless_store_fetches_each_content_once(tmp_path: Path) -> None:
    with exfat_image(tmp_path) as exfat:
        host = HostStore.private(str(exfat.path / "store"))
        files = {"u/__init__.py": b"", "u/Sub/__init__.py": b"", "u/a.py": b"A = 1\n"}
        manifest, by_digest = _contents(files)
        asked: list[str] = []

        def content(digest: str) -> bytes:
            asked.append(digest)
            return by_digest[digest]

        folder = host.build("u", "1" * 64, manifest, content)
        assert sorted(asked) == sorted(by_digest)  # the empty file once, though used twice
        assert not host.links  # EPERM: the store is not asked to link again
        assert {rel: data for rel, (data, _) in _folder_files(folder).items()} == files


def test_a_late_worker_with_an_empty_linkless_store_fetches_from_the_scheduler(
    project: Project, tmp_path: Path
) -> None:
    pkg = project.name
    with _case_insensitive("exfat", tmp_path, workers=1) as ci:
        client, mount = ci.client, ci.mounted.path
        _sync(client, project)
        project.write("{pkg}/sub.py", "VALUE = 2\n")
        project.write("{pkg}/extra.py", "X = 'x'\n")
        _sync(client, project)

        # A late worker, with a store of its own: neither a push nor its store holds the bytes.
        (first,) = client.scheduler_info()["workers"]
        ci.lc.scale(2)
        client.wait_for_workers(2, timeout=60)
        (late,) = set(client.scheduler_info()["workers"]) - {first}
        wait_until(
            lambda: (client.run(_node_view, workers=[late])[late] or {}).get("units"),
            60,
            "the late worker to catch up",
        )
        assert _on_each(client, _read, f"{pkg}.sub") == [2, 2]
        assert _on_each(client, _read, f"{pkg}.extra", "X") == ["x", "x"]
        views = _holds_what_it_reports(client, mount)
        assert views[late]["home"] != views[first]["home"]
        assert views[late]["units"][pkg]["digest"] == _digest_of(project)


# --------------------------------------------------------------------------------------------
# 4. Files that cannot be replaced or deleted


def test_an_old_version_that_cannot_be_deleted_whole_never_passes_for_whole(
    tmp_path: Path,
) -> None:
    """Collecting an old version whose file cannot be deleted (Windows: read-only or open)
    does not crash, and a later build of that version (the user reverted an edit) does not
    take what is left of it for the version."""
    with ext4_image(tmp_path) as ext4:
        (ext4.path / "store").mkdir(mode=0o700)
        host = HostStore(str(ext4.path / "store"), shared=True)
        node = host.node_folder("worker")
        v1_files = {"u/__init__.py": b"", "u/sub.py": b"V = 1\n"}
        v1, by_digest = _contents(v1_files)
        v1_digest = unit_digest("u", v1)
        v2, more = _contents({"u/__init__.py": b"", "u/sub.py": b"V = 2\n"})
        by_digest |= more
        v2_digest = unit_digest("u", v2)
        node.pin(f"u-{v1_digest[:16]}")
        old = host.build("u", v1_digest, v1, by_digest.__getitem__)
        # The file and its stored content are one inode.
        with immutable(Path(host.content_path(v1["u/sub.py"]))):
            node.pin(f"u-{v2_digest[:16]}")
            new = host.build("u", v2_digest, v2, by_digest.__getitem__)  # the edit lands
            node.unpin(f"u-{v1_digest[:16]}")
            host.collect(wait=True)  # no crash
            assert not os.path.exists(old)  # no longer under its version's name

            node.pin(f"u-{v1_digest[:16]}")  # the edit is undone
            again = host.build("u", v1_digest, v1, by_digest.__getitem__)
            assert again == old
            assert {rel: data for rel, (data, _) in _folder_files(again).items()} == v1_files
        assert {rel: data for rel, (data, _) in _folder_files(new).items()}[
            "u/sub.py"
        ] == b"V = 2\n"
        host.release(node)  # what could not be deleted before goes now
        assert os.listdir(host.versions) == []
        assert os.listdir(host.files) == []


def test_syncs_over_an_undeletable_live_file_and_back(project: Project, tmp_path: Path) -> None:
    """A live file that cannot be replaced or deleted (Windows' read-only and open files):
    the edit lands, the old version goes as far as it can, and undoing the edit brings the
    old version back whole."""
    pkg = project.name
    with ext4_image(tmp_path) as ext4:
        with _cluster(ext4.path, workers=1) as (_, client):
            _sync(client, project)
            ((address, view),) = _views(client).items()
            old = view["units"][pkg]["path"]
            sub = view["units"][pkg]["files"][f"{pkg}/sub.py"][0]
            with immutable(Path(view["home"], "files", sub)):  # one inode with the live file
                project.write("{pkg}/sub.py", "VALUE = 2\n")
                _sync(client, project)
                assert _on_each(client, _read, f"{pkg}.sub") == [2]
                # The node lets the old version go once no task can read it.
                gone = Path(old, pkg, "__init__.py")
                wait_until(lambda: not gone.exists(), 30, "the old version to be collected")

                project.write("{pkg}/sub.py", "VALUE = 1\n\ndef value():\n    return VALUE\n")
                _sync(client, project)
                assert _on_each(client, _read, f"{pkg}.sub") == [1]
                view = _holds_what_it_reports(client, ext4.path)[address]
                assert view["units"][pkg]["path"] == old
        home = Path(view["home"])
        assert list((home / "versions").iterdir()) == []  # closed: everything went
        assert list((home / "files").iterdir()) == []


# --------------------------------------------------------------------------------------------
# 5. Names Windows cannot hold, refused up front


LONG = "/".join(["d" * 30] * 4) + "/" + "m" * 10 + ".py"  # 135 characters


@pytest.mark.parametrize(
    ("rel", "problem"),
    [
        ("pkg/sub.py", None),
        ("pkg/console.py", None),
        ("pkg/com0.py", None),
        ("pkg/con.py", "'con.py' is a device name on Windows"),
        ("pkg/AUX.py", "'AUX.py' is a device name on Windows"),
        ("pkg/nul", "'nul' is a device name on Windows"),
        ("pkg/lpt9.tar.gz", "'lpt9.tar.gz' is a device name on Windows"),
        ("pkg/prn/x.py", "'prn' is a device name on Windows"),
        ("pkg/com1/x.py", "'com1' is a device name on Windows"),
        ("pkg/data.", "'data.' ends with a dot or a space, which Windows drops"),
        ("pkg/notes /a.txt", "'notes ' ends with a dot or a space, which Windows drops"),
        ("pkg/a:b.py", "'a:b.py' holds a character Windows forbids in names"),
        ("pkg/what?.txt", "'what?.txt' holds a character Windows forbids in names"),
        ("pkg/tab\t.txt", "'tab\\t.txt' holds a character Windows forbids in names"),
    ],
)
def test_windows_problem(rel: str, problem: str | None) -> None:
    assert protocol.windows_problem(rel) == problem


def test_windows_paths_of_260_characters_or_more() -> None:
    root = 120  # the scheduler's allowance for the node's own folder
    fits = "p/" + "x" * (protocol.WINDOWS_MAX_PATH - root - 1 - 2 - 1)  # 259 in all
    assert root + 1 + len(fits) == 259
    assert protocol.windows_problem(fits, root_length=root) is None
    assert protocol.windows_problem(fits + "x", root_length=root) == (
        "the path is over 260 characters under the node's folder"
    )


@pytest.mark.parametrize(
    "rel", ["../x.py", "/etc/passwd", "pkg//x.py", "pkg/./x.py", "pkg/../../x", "C:x.py", "a\0b"]
)
def test_a_node_refuses_a_path_outside_its_folder(rel: str) -> None:
    unit = {"name": "pkg", "digest": "0" * 64, "manifest": {rel: "0" * 64}}
    with pytest.raises(ValueError, match="refused: unsafe path"):
        protocol.check_unit(unit)


def test_a_linux_node_takes_names_only_windows_reserves() -> None:
    unit = {"name": "pkg", "digest": "0" * 64, "manifest": {"pkg/con.py": "0" * 64}}
    protocol.check_unit(unit)  # a Linux node can hold it: refused only for a Windows worker


@pytest.fixture
def windows_worker() -> Iterator[tuple[Client, str]]:
    """A real scheduler whose one worker told it (in Dask's version report) that it runs
    Windows; the worker, in-process, keeps the process's modules."""
    with (
        LocalCluster(n_workers=1, processes=False, protocol="tcp", dashboard_address=":0") as lc,
        Client(lc) as client,
    ):
        ((address, ws),) = lc.scheduler.workers.items()
        assert ws.versions["host"]["OS"] == "Linux"
        ws.versions["host"]["OS"] = "Windows"
        yield client, address


@pytest.mark.parametrize(
    ("rel", "problem"),
    [
        ("{pkg}/con.py", "'con.py' is a device name on Windows"),
        ("{pkg}/aux.py", "'aux.py' is a device name on Windows"),
        ("{pkg}/nul", "'nul' is a device name on Windows"),
        ("{pkg}/data.", "'data.' ends with a dot or a space, which Windows drops"),
        ("{pkg}/" + LONG, "the path is over 260 characters under the node's folder"),
    ],
)
def test_a_cluster_with_a_windows_worker_refuses_such_names_before_sending_anything(
    windows_worker: tuple[Client, str], project: Project, rel: str, problem: str
) -> None:
    client, address = windows_worker
    _sync(client, project)
    before = client.run_on_scheduler(agent_state)
    project.write("{pkg}/sub.py", "VALUE = 2\n")
    project.write(rel, "x = 1\n")
    path = rel.format(pkg=project.name)
    with pytest.raises(ShipitError) as refused:
        shipit.sync(client, project.root, install=False)
    assert str(refused.value) == (
        f"the scheduler refused the push: {project.name}: {path}: {problem} (on {address})"
    )
    after = client.run_on_scheduler(agent_state)
    assert (after["generation"], after["units"]) == (before["generation"], before["units"])


def test_the_command_says_why_in_one_line(
    windows_worker: tuple[Client, str], project: Project
) -> None:
    client, address = windows_worker
    project.write("{pkg}/con.py", "x = 1\n")
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-m", "shipit", "sync", "--scheduler", client.scheduler.address,
         "--no-install"],
        cwd=project.root, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        f"ERROR the scheduler refused the push: {project.name}: {project.name}/con.py: "
        f"'con.py' is a device name on Windows (on {address})"
    ], done.stderr


def test_a_cluster_without_windows_workers_ships_such_names(
    project: Project, local_cluster: Any
) -> None:
    project.write("{pkg}/con.py", "WHERE = 'linux'\n")
    _sync(local_cluster.client, project)
    assert _on_each(local_cluster.client, _read, f"{project.name}.con", "WHERE") == ["linux"] * 2


# --------------------------------------------------------------------------------------------
# 6. Ten nodes starting at once on one host


def _node_folders(client: Client) -> dict[str, tuple[int, str]]:
    """Per worker: its pid and its pin folder."""
    views = _views(client)
    assert all(v is not None and v["node"] for v in views.values()), views
    return {a: (v["pid"], v["node"]) for a, v in views.items()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ten_nodes_starting_at_once_each_keep_their_own_folder(
    project: Project, tmp_path: Path
) -> None:
    # Ten workers restarting at once on two cores take more than the 15 s after which
    # LocalCluster gives a lost worker up and closes its nanny for good (with or without
    # shipit): give them longer.
    with (
        dask.config.set({"distributed.deploy.lost-worker-timeout": "120s"}),
        _cluster(tmp_path / "store", workers=10) as (_, client),
    ):
        nodes = Path(tmp_path / "store" / f"shipit-{os.getuid()}-v2" / "nodes")
        _sync(client, project)

        def check(value: int) -> set[str]:
            folders = _node_folders(client)
            paths = {path for _, path in folders.values()}
            assert len(paths) == 10  # distinct
            for path in paths:
                assert Path(path).is_dir() and Path(f"{path}.lock").is_file(), path
            assert _on_each(client, _read, f"{project.name}.sub") == [value] * 10
            return paths

        first = check(1)
        assert {str(p) for p in nodes.iterdir() if not p.name.endswith(".lock")} == first
        old_pids = {pid for pid, _ in _node_folders(client).values()}
        client.restart()
        wait_until(
            lambda: all(v and v["node"] for v in _views(client).values()), 60, "agents set up"
        )
        second = check(1)
        assert first.isdisjoint(second)
        assert not any(_alive(pid) for pid in old_pids)
        # The dead nodes' folders go as soon as a node collects: the next sync.
        project.write("{pkg}/sub.py", "VALUE = 2\n")
        _sync(client, project)
        assert _on_each(client, _read, f"{project.name}.sub") == [2] * 10
        wait_until(
            lambda: {str(p) for p in nodes.iterdir() if not p.name.endswith(".lock")} == second,
            30,
            "only the live nodes' folders",
        )
        assert {p.name for p in nodes.iterdir() if p.name.endswith(".lock")} == {
            f"{Path(p).name}.lock" for p in second
        }
        assert check(2) == second
