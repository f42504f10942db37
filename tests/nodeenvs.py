"""Nodes unlike the client, for real: other Python minors, and Windows/macOS file system rules.

Nothing here downloads or installs anything. A node Python is a venv of a pyenv interpreter whose
one ``.pth`` line points at the client venv's site-packages, so it runs the client's very
dask/distributed; compiled modules built for the client's minor are simply not found there and
their pure fallbacks load (msgpack, pyyaml, markupsafe), abi3 builds load as they are (psutil,
tornado.speedups). File systems are small images on loop devices, mounted by the kernel where it
has the driver, else by a FUSE driver; every helper skips with a reason where the machine
cannot, and always unmounts and detaches.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# --------------------------------------------------------------------------------------------
# Node Pythons

PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
CLIENT_SITE = Path(sysconfig.get_paths()["purelib"])
MINORS = ("3.10", "3.11", "3.12", "3.13")  # what pyproject allows, up to the newest here
CLIENT_MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"
OTHER_MINORS = tuple(m for m in MINORS if m != CLIENT_MINOR)
# The other minor that runs behind a nanny (restarted by the tests).
NANNY_MINOR = next(m for m in ("3.12", "3.13", "3.11") if m != CLIENT_MINOR)
# Compiled parts of distributed's dependencies, and what a node imports instead when the
# client's build cannot load there (checked by probe_modules).
COMPILED = ("msgpack", "yaml", "markupsafe", "psutil", "tornado.speedups", "lz4", "cytoolz")


def pyenv_python(minor: str) -> Path | None:
    """The newest pyenv interpreter of ``minor`` ("3.12"), or None."""

    def micro(python: Path) -> int:  # -1 for 3.13.0t (free-threaded), 3.12-dev and the like
        match = re.fullmatch(rf"{re.escape(minor)}\.(\d+)", python.parents[1].name)
        return int(match[1]) if match and python.exists() else -1

    found = [p for p in PYENV_ROOT.glob(f"versions/{minor}.*/bin/python{minor}") if micro(p) >= 0]
    return max(found, key=micro, default=None)


@dataclass(frozen=True)
class NodePython:
    """A venv on another Python minor that runs the client's dask/distributed, not shipit."""

    minor: str  # "3.12"
    version: str  # "3.12.1"
    python: Path  # the venv's interpreter
    folder: Path

    def run(self, code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``code`` there, from a folder outside the repository (so ``shipit`` is unseen)."""
        return subprocess.run(
            [str(self.python), "-c", code], cwd=cwd or self.folder, env=node_env(),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def probe_modules(self) -> dict[str, str]:
        """For each of COMPILED: "compiled" (its extension loads), "pure" (its fallback runs),
        or "missing" (not installed in the client venv)."""
        import inspect

        out = self.run(f"import json\n{inspect.getsource(_probe)}\nprint(json.dumps(_probe()))")
        if out.returncode:
            raise RuntimeError(out.stderr)
        return json.loads(out.stdout)


def _probe() -> dict[str, str]:
    """Run on a node: which compiled modules load (see NodePython.probe_modules)."""
    import importlib

    def loads(name: str) -> bool:
        try:
            importlib.import_module(name)
        except ImportError:
            return False
        return True

    extension = {
        "msgpack": "msgpack._cmsgpack",
        "yaml": "yaml._yaml",
        "markupsafe": "markupsafe._speedups",
        "psutil": "psutil._psutil_linux",
        "tornado.speedups": "tornado.speedups",
        "lz4": "lz4.frame._frame",
        "cytoolz": "cytoolz.itertoolz",
    }
    return {
        name: "missing" if not loads(name) else "compiled" if loads(ext) else "pure"
        for name, ext in extension.items()
    }


def node_env(**extra: str) -> dict[str, str]:
    """The environment of a node process: no PYTHONPATH, no client scheduler address, and
    faulthandler on, so a segfault prints ``Fatal Python error: Segmentation fault`` to its log."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DASK_SCHEDULER_ADDRESS")}
    return {**env, "PYTHONFAULTHANDLER": "1", **extra}


def make_node_python(minor: str, folder: Path) -> NodePython:
    """Build the venv for ``minor`` in ``folder``; skip when pyenv has no such Python. Raises
    when the venv would not run the client's dask/distributed, or would see shipit."""
    base = pyenv_python(minor)
    if base is None:
        pytest.skip(f"no Python {minor} under {PYENV_ROOT}/versions (pyenv install {minor})")
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(folder)], check=True)
    node = NodePython(minor, "", folder / "bin" / "python", folder)
    site = node.run("import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    # A path line adds the folder but runs none of the .pth files in it: the client's editable
    # install of shipit stays invisible, its dependencies do not.
    Path(site, "client-site.pth").write_text(f"{CLIENT_SITE}\n")
    facts = node.run(
        "import json, platform, dask, distributed\n"
        "try:\n    import shipit\nexcept ImportError:\n    shipit = None\n"
        "print(json.dumps([platform.python_version(), dask.__version__,"
        " distributed.__version__, shipit is not None]))"
    )
    if facts.returncode:  # the client's packages are built for the client's Python
        last = (facts.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(
            f"the client's dask/distributed (installed for Python {sys.version_info[0]}."
            f"{sys.version_info[1]}) do not import on Python {minor} ({last}): node venvs here "
            "share the client's packages"
        )
    version, dask_version, distributed_version, sees_shipit = json.loads(facts.stdout)
    import dask
    import distributed

    if (dask_version, distributed_version) != (dask.__version__, distributed.__version__):
        raise RuntimeError(f"{minor} runs dask {dask_version}, distributed {distributed_version}")
    if sees_shipit:
        raise RuntimeError(f"the Python {minor} node venv can import shipit")
    return NodePython(minor, version, node.python, folder)


@pytest.fixture(scope="session")
def node_python(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], NodePython]:
    """``node_python("3.12")``: that minor's node venv, made once per test session."""
    made: dict[str, NodePython] = {}

    def get(minor: str) -> NodePython:
        if minor not in made:
            made[minor] = make_node_python(minor, tmp_path_factory.mktemp(f"py{minor}-node"))
        return made[minor]

    return get


# --------------------------------------------------------------------------------------------
# Scheduler and workers as processes, each with its own Python and its own log

CRASH_MARKS = re.compile(r"signal 11|Segmentation fault|SIGSEGV|Fatal Python error")


@dataclass
class Node:
    """One ``dask scheduler`` / ``dask worker`` process; stdout and stderr go to ``log``."""

    name: str
    python: Path
    nanny: bool
    log: Path
    proc: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def crashes(self) -> list[str]:
        """Evidence of a crash: log lines with ``signal 11``/``Segmentation fault``/``Fatal Python
        error`` (a nanny logs its worker's signal; faulthandler logs the fault itself), and the
        process's own death by a signal."""
        lines = [line for line in self.log_text().splitlines() if CRASH_MARKS.search(line)]
        rc = self.proc.poll()
        if rc is not None and rc < 0:
            lines.append(f"process killed by {signal.Signals(-rc).name}")
        return lines

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


def wait_until(condition: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; return that, or fail at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what or condition}")
        time.sleep(0.05)


@dataclass
class NodeCluster:
    """A ``dask scheduler`` on the client's Python and workers on any Python, on loopback.

    Use as a context manager: workers are stopped before the scheduler, killed if they hang.
    """

    workdir: Path
    scheduler: Node | None = None
    workers: dict[str, Node] = field(default_factory=dict)

    def __enter__(self) -> NodeCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def scheduler_file(self) -> Path:
        return self.workdir / "scheduler.json"

    def _spawn(self, name: str, python: Path, nanny: bool, *args: str) -> Node:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(python), "-m", *args], cwd=self.workdir, stdout=out, stderr=out, env=node_env()
            )
        return Node(name, python, nanny, log, proc)

    def start_scheduler(self, python: Path = Path(sys.executable)) -> str:
        """Start the scheduler; return its address."""
        self.scheduler = scheduler = self._spawn(
            "scheduler", python, False, "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
            "--port", "0", "--no-dashboard", "--scheduler-file", str(self.scheduler_file),
        )  # fmt: skip

        def address() -> str | None:
            if not scheduler.alive:
                raise RuntimeError(f"the scheduler exited:\n{scheduler.log_text()}")
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
                return str(json.loads(self.scheduler_file.read_text())["address"])
            return None

        return str(wait_until(address, 60, "the scheduler's address"))

    def start_worker(self, name: str, python: Path, nanny: bool = False, *args: str) -> Node:
        """Start a worker named ``name`` (its name in the scheduler too); ``args`` go to
        ``dask worker``. Returns at once: use ``wait_for_worker``."""
        if name in self.workers:
            raise ValueError(f"a worker is already named {name}")
        node = self._spawn(
            name, python, nanny, "distributed.cli.dask_worker", "--scheduler-file",
            str(self.scheduler_file), "--name", name, "--nthreads", "1", "--no-dashboard",
            "--host", "127.0.0.1", "--nanny" if nanny else "--no-nanny", *args,
        )  # fmt: skip
        self.workers[name] = node
        return node

    def address_of(self, client: Any, name: str) -> str | None:
        """The address under which the scheduler knows worker ``name`` now, or None."""
        for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
            if str(info.get("name")) == name:
                return str(address)
        return None

    def wait_for_worker(self, client: Any, name: str, timeout: float = 120) -> str:
        """Wait until worker ``name`` is connected; return its address. Fails at once, with its
        log, if the process died."""
        node = self.workers[name]

        def connected() -> str | None:
            if not node.alive:
                raise RuntimeError(f"worker {name} exited {node.proc.poll()}:\n{node.log_text()}")
            return self.address_of(client, name)

        return str(wait_until(connected, timeout, f"worker {name} to connect"))

    def close(self) -> None:
        # Workers first: a worker whose scheduler is gone spends seconds retrying it.
        nodes = [*self.workers.values(), *([self.scheduler] if self.scheduler else [])]
        for node in nodes:
            if node.alive:
                node.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(timeout=20)
            if node.alive:
                node.proc.kill()
                node.proc.wait()


# --------------------------------------------------------------------------------------------
# File systems with other rules, on loop devices

# Which Debian package provides each tool (``dpkg -S``), for skip reasons and the CI notes.
PACKAGES = {
    "mount": "mount", "umount": "mount", "losetup": "mount",
    "mkfs.ext4": "e2fsprogs", "chattr": "e2fsprogs",
    "mkfs.vfat": "dosfstools", "fusefat": "fusefat", "fusermount": "fuse",
    "mkfs.exfat": "exfatprogs", "mount.exfat-fuse": "exfat-fuse",
}  # fmt: skip


@dataclass(frozen=True)
class Mounted:
    """A mounted image: ``path`` is the mount point."""

    path: Path
    fstype: str  # "vfat", "exfat", "ext4"
    driver: str  # "kernel", or the FUSE program: "fusefat", "mount.exfat-fuse"
    image: Path
    device: str  # the loop device


def mount_unavailable() -> str | None:
    """Why this machine cannot mount loop images, or None."""
    if os.geteuid() != 0:
        return "mounting an image needs root"
    if not Path("/dev/loop-control").exists():
        return "no loop devices here (/dev/loop-control is missing)"
    return None


def kernel_has(fstype: str) -> bool:
    """Whether the running kernel has the file system (it cannot load modules it lacks)."""
    return any(
        line.split()[-1] == fstype for line in Path("/proc/filesystems").read_text().splitlines()
    )


def _need(*tools: str) -> None:
    if reason := mount_unavailable():
        pytest.skip(reason)
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install {PACKAGES.get(tool, tool)})")


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _unmount(mountpoint: Path, fuse: bool, busy_for: float = 5) -> None:
    """Unmount; a file system still busy after ``busy_for`` seconds (a file left open) is
    detached lazily: gone from the tree at once, released when its last file closes."""
    command = ("fusermount", "-u") if fuse and shutil.which("fusermount") else ("umount",)

    def unmounted() -> bool:
        if os.path.ismount(mountpoint):
            _run(*command, str(mountpoint))
        return not os.path.ismount(mountpoint)

    with contextlib.suppress(TimeoutError):
        wait_until(unmounted, busy_for, f"unmount {mountpoint}")
    if os.path.ismount(mountpoint):
        _run("umount", "-l", str(mountpoint))


@contextlib.contextmanager
def loop_image(
    folder: Path,
    fstype: str,
    mkfs: Sequence[str],
    mount: Callable[[str, Path], list[str]] | None,
    size_mb: int = 32,
) -> Iterator[Mounted]:
    """Make an image of ``size_mb`` in ``folder``, format it with ``mkfs + [image]``, attach it to
    a loop device and mount it at ``folder/mnt``: with the kernel's driver when ``mount`` is None,
    else with the command ``mount(device, mountpoint)``. Skips with the tool's stderr when that
    fails; always unmounts and detaches."""
    image, mountpoint = folder / f"{fstype}.img", folder / "mnt"
    mountpoint.mkdir(parents=True)
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    if (made := _run(*mkfs, str(image))).returncode:
        pytest.skip(f"{' '.join(mkfs)} failed: {made.stderr.strip()}")
    attached = _run("losetup", "--find", "--show", str(image))
    if attached.returncode:
        pytest.skip(f"no loop device for {image.name}: {attached.stderr.strip()}")
    device = attached.stdout.strip()
    try:
        command = (
            mount(device, mountpoint) if mount else ["mount", "-t", fstype, device, str(mountpoint)]
        )
        if (mounted := _run(*command)).returncode or not os.path.ismount(mountpoint):
            pytest.skip(f"{' '.join(command)} failed: {(mounted.stderr or mounted.stdout).strip()}")
        try:
            yield Mounted(
                mountpoint, fstype, Path(command[0]).name if mount else "kernel", image, device
            )
        finally:
            _unmount(mountpoint, fuse=mount is not None)
    finally:
        # A FUSE daemon may still hold the device for a moment after the unmount.
        wait_until(lambda: _run("losetup", "-d", device).returncode == 0 or device not in
                   _run("losetup", "-a").stdout, 30, f"detach {device}")  # fmt: skip


@contextlib.contextmanager
def fat_image(folder: Path, size_mb: int = 32) -> Iterator[Mounted]:
    """A FAT (vfat) file system: the kernel's vfat driver if it has one, else fusefat.

    Measured with fusefat (no vfat in this kernel): names compare case-insensitively, ``os.link``
    fails with EPERM, ``os.symlink`` and ``os.chmod`` with ENOSYS (modes stay 0o700),
    ``os.replace`` onto an existing file works, a case-only rename works for a file but fails
    with EPERM for a folder, ``:`` in a name fails with EPERM, ``con.py`` is accepted."""
    _need("mkfs.vfat", "losetup")
    if kernel_has("vfat"):
        mount = None
    elif shutil.which("fusefat"):
        mount = lambda device, mnt: ["fusefat", "-o", "rw+", device, str(mnt)]  # noqa: E731
    else:
        pytest.skip(
            "no vfat in this kernel (CONFIG_VFAT_FS) and no fusefat (apt-get install fusefat)"
        )
    with loop_image(folder, "vfat", ["mkfs.vfat"], mount, size_mb) as mounted:
        yield mounted


@contextlib.contextmanager
def exfat_image(folder: Path, size_mb: int = 32) -> Iterator[Mounted]:
    """An exFAT file system (Windows' and macOS's common one): kernel driver, else exfat-fuse.

    Measured with exfat-fuse: case-insensitive, ``os.link`` EPERM, ``os.symlink`` ENOSYS,
    ``os.chmod`` accepted and ignored (modes stay 0o777), case-only renames work, ``:`` in a
    name fails with ENOENT."""
    _need("mkfs.exfat", "losetup")
    if kernel_has("exfat"):
        mount = None
    elif shutil.which("mount.exfat-fuse"):
        mount = lambda device, mnt: ["mount.exfat-fuse", device, str(mnt)]  # noqa: E731
    else:
        pytest.skip("no exfat in this kernel and no exfat-fuse (apt-get install exfat-fuse)")
    with loop_image(folder, "exfat", ["mkfs.exfat"], mount, size_mb) as mounted:
        yield mounted


def casefold_unavailable() -> str | None:
    """Why ext4's casefold cannot be used here, or None."""
    if not Path("/sys/fs/ext4/features/casefold").exists():
        return "this kernel's ext4 has no casefold (built without CONFIG_UNICODE)"
    return None


@contextlib.contextmanager
def ext4_image(folder: Path, size_mb: int = 64, casefold: bool = False) -> Iterator[Mounted]:
    """An ext4 file system of its own (the 65,000-link limit, ``chattr``), optionally made with
    ``-O casefold`` so that ``casefold_dir`` can make case-insensitive folders."""
    _need("mkfs.ext4", "losetup")
    if casefold and (reason := casefold_unavailable()):
        pytest.skip(reason)
    mkfs = ["mkfs.ext4", "-q", "-F", *(["-O", "casefold"] if casefold else [])]
    with loop_image(folder, "ext4", mkfs, None, size_mb) as mounted:
        yield mounted


def casefold_dir(path: Path) -> Path:
    """Make ``path`` an empty folder whose names compare case-insensitively (``chattr +F``)."""
    path.mkdir()
    if (done := _run("chattr", "+F", str(path))).returncode:
        pytest.skip(f"chattr +F {path.name}: {done.stderr.strip()}")
    return path


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """``chattr +i`` on ``path`` for the block: ``os.replace`` onto it, ``os.unlink``,
    ``os.rename`` and opening for writing fail with EPERM, as Windows refuses a read-only target
    (there the error is EACCES and renaming the file itself is allowed). Needs ext4 or the like."""
    _need("chattr")
    if (done := _run("chattr", "+i", str(path))).returncode:
        pytest.skip(f"chattr +i {path}: {done.stderr.strip()}")
    try:
        yield path
    finally:
        _run("chattr", "-i", str(path))


@dataclass(frozen=True)
class LinkFill:
    nlink: int  # the target's link count when link(2) refused, or at the cap
    error: OSError | None  # what refused (EMLINK on ext4), None if the cap came first
    seconds: float


def fill_links(target: Path, folder: Path, cap: int = 70_000) -> LinkFill:
    """Hard-link ``target`` into ``folder`` (made here) until ``os.link`` refuses or ``cap``."""
    folder.mkdir()
    start, error = time.perf_counter(), None
    try:
        for i in range(cap):
            os.link(target, folder / str(i))
    except OSError as e:
        error = e
    return LinkFill(target.stat().st_nlink, error, time.perf_counter() - start)


def file_op_times(folder: Path, n: int = 2100) -> dict[str, float]:
    """Seconds for ``n`` new small files, ``n`` hard links to them, ``n`` ``os.rename`` calls."""
    for sub in ("files", "links"):
        (folder / sub).mkdir(parents=True)
    times: dict[str, float] = {}
    start = time.perf_counter()
    for i in range(n):
        with open(folder / "files" / f"m{i}.py", "wb") as f:
            f.write(b"VALUE = %d\n" % i)
    times["create"] = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(n):
        os.link(folder / "files" / f"m{i}.py", folder / "links" / f"m{i}.py")
    times["link"] = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(n):
        os.rename(folder / "links" / f"m{i}.py", folder / "links" / f"r{i}.py")
    times["rename"] = time.perf_counter() - start
    return times
