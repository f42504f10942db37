"""The test infrastructure of tests/nodeenvs.py, proved on real processes and real mounts."""

from __future__ import annotations

import errno
import operator
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from distributed import Client
from distributed.scheduler import KilledWorker

from .nodeenvs import (
    CLIENT_MINOR,
    COMPILED,
    NANNY_MINOR,
    OTHER_MINORS,
    Mounted,
    NodeCluster,
    NodePython,
    _probe,
    casefold_dir,
    casefold_unavailable,
    exfat_image,
    ext4_image,
    fat_image,
    file_op_times,
    fill_links,
    immutable,
    wait_until,
)

CLIENT = Path(sys.executable)
# Calls a function: a 3.11 client's bytecode segfaults 3.12 and 3.13 (a bare ``x + 1`` happens
# to run on 3.12) and cannot even be unpickled on 3.10; from other clients it kills the
# worker or fails the task (the code object differs between every two minors).
BY_VALUE = lambda x: len(str(x))  # noqa: E731

# Real node processes (other Pythons), loop-mounted file systems.
pytestmark = pytest.mark.cluster


def _python_of(versions: dict[str, object]) -> str:
    return str(versions["host"]["python"])  # type: ignore[index]


@pytest.mark.parametrize("minor", OTHER_MINORS)
def test_a_node_python_runs_the_clients_dask_but_not_shipit(
    node_python: Callable[[str], NodePython], minor: str
) -> None:
    import dask
    import distributed

    node = node_python(minor)

    assert node.version.startswith(minor + ".")
    out = node.run("import dask, distributed; print(dask.__version__, distributed.__version__)")
    assert out.stdout.split() == [dask.__version__, distributed.__version__]
    assert "ModuleNotFoundError: No module named 'shipit'" in node.run("import shipit").stderr
    assert node_python(minor) is node  # made once per session
    # What loads there of distributed's compiled dependencies, next to the client's own.
    modules, client = node.probe_modules(), _probe()
    print(f"\n{minor}: {modules}\nclient: {client}")
    assert set(modules) == set(COMPILED)
    for pure in ("msgpack", "yaml", "markupsafe"):  # the client minor's builds: pure fallbacks
        assert (client[pure], modules[pure]) == ("compiled", "pure")
    for abi3 in ("psutil", "tornado.speedups"):  # abi3 builds load on every minor
        assert modules[abi3] == client[abi3] == "compiled"


def test_workers_on_four_minors_run_tasks_by_reference(
    node_python: Callable[[str], NodePython], tmp_path: Path
) -> None:
    nodes = {CLIENT_MINOR: CLIENT, **{m: node_python(m).python for m in OTHER_MINORS}}
    with NodeCluster(tmp_path) as nc:
        address = nc.start_scheduler()
        for minor, python in nodes.items():
            nc.start_worker(f"py{minor}", python)
        with Client(address, timeout=30) as client:
            workers = {minor: nc.wait_for_worker(client, f"py{minor}") for minor in nodes}

            versions = client.get_versions()["workers"]
            assert {m: _python_of(versions[w])[:5].rstrip(".") for m, w in workers.items()} == {
                m: m for m in nodes
            }
            ran = client.run(platform.python_version)
            for minor, worker in workers.items():
                assert ran[worker].startswith(minor + ".")
                task = client.submit(operator.add, 1, 2, workers=[worker], pure=False)
                assert task.result(timeout=60) == 3
            for minor in nodes:
                node = nc.workers[f"py{minor}"]
                assert node.alive and node.crashes() == []
                assert nc.address_of(client, f"py{minor}") == workers[minor]


@pytest.mark.parametrize("minor", OTHER_MINORS)
def test_a_function_by_value_breaks_a_worker_on_another_minor(
    node_python: Callable[[str], NodePython], tmp_path: Path, minor: str
) -> None:
    python = node_python(minor).python
    with NodeCluster(tmp_path) as nc:
        address = nc.start_scheduler()
        nc.start_worker("same", CLIENT)
        nc.start_worker("other", python)  # no nanny: one crash, then the process is gone
        with Client(address, timeout=30) as client:
            same, other = nc.wait_for_worker(client, "same"), nc.wait_for_worker(client, "other")
            assert client.submit(BY_VALUE, 123, workers=[same]).result(timeout=60) == 3

            task = client.submit(BY_VALUE, 456, workers=[other], allow_other_workers=False)
            node = nc.workers["other"]
            wait_until(lambda: not node.alive or task.done(), 60, f"the {minor} worker to fail")
            if node.alive:  # no crash this time: the task failed there, and says so
                print(f"\n{minor}: {task.status}: {task.exception()!r}")
                assert task.status == "error" and CLIENT_MINOR != "3.11"
                return
            wait_until(
                lambda: nc.address_of(client, "other") is None, 60, "the scheduler to drop it"
            )
            print(f"\n{minor}: exit {node.proc.returncode}, crashes {node.crashes()}")
            # What it dies of, as seen from a 3.11 client (from others: that it dies, above).
            if CLIENT_MINOR == "3.11" and minor == "3.10":
                # Unpickling the task in the worker's scheduler stream fails: the worker closes.
                assert "TypeError: code expected at most 16 arguments" in node.log_text()
                assert "worker-handle-scheduler-connection-broken" in node.log_text()
                assert node.crashes() == []
            elif CLIENT_MINOR == "3.11":
                assert "Fatal Python error: Segmentation fault" in node.crashes()
                assert "process killed by SIGSEGV" in node.crashes()
            assert nc.workers["same"].alive and nc.address_of(client, "same") == same


def test_a_nanny_worker_on_another_minor_restarts_and_its_log_shows_each_crash(
    node_python: Callable[[str], NodePython], tmp_path: Path
) -> None:
    if CLIENT_MINOR != "3.11":
        pytest.skip(f"the segfault it restarts from is a 3.11 client's task on {NANNY_MINOR}")
    py312 = node_python(NANNY_MINOR)
    with NodeCluster(tmp_path) as nc:
        address = nc.start_scheduler()
        node = nc.start_worker("py312", py312.python, nanny=True)
        with Client(address, timeout=30) as client:
            first = nc.wait_for_worker(client, "py312")

            client.restart(timeout=120)
            again = nc.wait_for_worker(client, "py312")
            assert again != first  # a new worker process behind the same nanny
            client.restart_workers([again], timeout=120)
            latest = nc.wait_for_worker(client, "py312")
            assert client.run(platform.python_version, workers=[latest])[latest] == py312.version
            assert node.crashes() == [] and node.alive

            # A by-value task: the nanny restarts the crashed worker, the scheduler retries the
            # task there until it gives up, and the worker is back, connected.
            with pytest.raises(KilledWorker):
                client.submit(BY_VALUE, 1).result(timeout=180)
            wait_until(lambda: nc.address_of(client, "py312"), 120, "the worker to come back")
            assert node.alive
            signals = [line for line in node.crashes() if "signal 11" in line]
            print(f"\n{len(signals)} segfaults: {signals[0]}")
            assert len(signals) >= 2  # distributed.scheduler.allowed-failures is 3


# --------------------------------------------------------------------------------------------
# File systems


def _errno(call: Callable[[], object]) -> str | None:
    try:
        call()
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e.errno))
    return None


def _detached(mounted: Mounted) -> bool:
    listed = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    return not os.path.ismount(mounted.path) and f"{mounted.device}:" not in listed


def test_fat_compares_names_case_insensitively_and_has_no_links_or_modes(tmp_path: Path) -> None:
    with fat_image(tmp_path) as fat:
        root = fat.path
        (root / "Foo.py").write_text("old\n")
        assert (root / "foo.py").read_text() == "old\n"
        assert _errno(lambda: (root / "FOO.PY").open("x")) == "EEXIST"
        assert _errno(lambda: os.link(root / "Foo.py", root / "bar.py")) in ("EPERM", "EOPNOTSUPP")
        chmod = _errno(lambda: os.chmod(root / "Foo.py", 0o444))
        (root / "new.py").write_text("new\n")
        os.replace(root / "new.py", root / "Foo.py")  # Linux drivers ignore FAT's read-only bit
        assert (root / "Foo.py").read_text() == "new\n"
        os.unlink(root / "Foo.py")
        print(f"\n{fat.driver}: chmod -> {chmod}")
        if fat.driver == "fusefat":
            assert chmod == "ENOSYS"
            assert _errno(lambda: os.symlink("x", root / "sym")) == "ENOSYS"
            (root / "Dir").mkdir()
            assert _errno(lambda: os.rename(root / "Dir", root / "dir")) == "EPERM"
            (root / "Mod.py").write_text("")
            os.rename(root / "Mod.py", root / "mod.py")
            assert "mod.py" in os.listdir(root)
    wait_until(lambda: _detached(fat), 30, "the FUSE mount and loop device to go")


def test_exfat_compares_names_case_insensitively_and_has_no_links(tmp_path: Path) -> None:
    with exfat_image(tmp_path) as exfat:
        root = exfat.path
        (root / "Foo.py").write_text("x\n")
        assert (root / "foo.py").exists()
        assert _errno(lambda: os.link(root / "Foo.py", root / "bar.py")) in ("EPERM", "EOPNOTSUPP")
        os.chmod(root / "Foo.py", 0o444)
        os.rename(root / "Foo.py", root / "foo.py")
        assert os.listdir(root) == ["foo.py"]
        print(f"\n{exfat.driver}: mode after chmod 0o444: {oct(os.stat(root / 'foo.py').st_mode)}")
    wait_until(lambda: _detached(exfat), 30, "the FUSE mount and loop device to go")


def test_an_image_is_unmounted_and_detached_when_the_test_fails_with_a_file_open(
    tmp_path: Path,
) -> None:
    with pytest.raises(RuntimeError, match="the test failed"), ext4_image(tmp_path) as ext4:
        leaked = (ext4.path / "open.txt").open("w")
        raise RuntimeError("the test failed")
    assert not os.path.ismount(ext4.path)  # lazily: the open file keeps the device busy
    leaked.close()
    wait_until(lambda: _detached(ext4), 30, "the loop device to be released")


def test_ext4_refuses_the_65001st_link_with_emlink(tmp_path: Path) -> None:
    with ext4_image(tmp_path) as ext4:
        target = ext4.path / "__init__.py"
        target.write_text("")
        filled = fill_links(target, ext4.path / "links")
        print(f"\n{filled.nlink} links in {filled.seconds:.2f} s, then {filled.error}")
        assert filled.nlink == 65_000
        assert filled.error is not None and filled.error.errno == errno.EMLINK
        assert filled.seconds < 60


def test_an_immutable_file_refuses_replace_unlink_and_rename(tmp_path: Path) -> None:
    with ext4_image(tmp_path) as ext4:
        target, new = ext4.path / "ro.py", ext4.path / "new.py"
        target.write_text("old\n")
        new.write_text("new\n")
        with immutable(target):
            assert _errno(lambda: os.replace(new, target)) == "EPERM"
            assert _errno(lambda: os.unlink(target)) == "EPERM"
            assert _errno(lambda: os.rename(target, ext4.path / "moved.py")) == "EPERM"
        os.replace(new, target)
        assert target.read_text() == "new\n"


def test_a_casefold_folder_on_ext4(tmp_path: Path) -> None:
    if reason := casefold_unavailable():
        pytest.skip(reason)
    with ext4_image(tmp_path, casefold=True) as ext4:
        folder = casefold_dir(ext4.path / "ci")
        (folder / "Foo.py").write_text("x\n")
        assert (folder / "foo.py").read_text() == "x\n"


@pytest.mark.parametrize("where", ["/dev/shm", "tmp_path"])
def test_costs_of_links_files_and_renames(tmp_path: Path, where: str) -> None:
    import tempfile

    base = Path(where) if where.startswith("/") else tmp_path
    if not base.is_dir():
        pytest.skip(f"no {where} here")
    disk = os.stat(base).st_dev == os.stat(Path(__file__)).st_dev
    with tempfile.TemporaryDirectory(dir=base) as folder:
        times = file_op_times(Path(folder))
    shown = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in times.items())
    print(f"\n2,100 each in {base} ({'the repository disk' if disk else 'elsewhere'}): {shown}")
    assert set(times) == {"create", "link", "rename"} and all(t > 0 for t in times.values())
