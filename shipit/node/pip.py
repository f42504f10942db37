"""pip on a node: runs on workers (and the scheduler) through ``client.run``.

Imports only the standard library, and is pickled by value, so nodes need no shipit. One
pip runs at a time per Python environment on a host: workers that share an environment
queue on a file lock, which holds across processes (and across shipit clients). pip runs in
a thread, off the node's event loop, so heartbeats go on; every run has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import platform
import re
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from typing import Any

_TAIL = 1500  # characters of pip's output kept for the report
_ERROR_CHARS = 300
# The oldest glibc minor that manylinux wheels are built for, per architecture.
_OLDEST_GLIBC = {"x86_64": 5, "i686": 5}
_LEGACY_MANYLINUX = (("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5))


def environment() -> dict[str, Any]:
    """Which Python environment this process runs in, and the wheels it accepts.

    Workers with the same ``key`` (host and ``sys.prefix``) share one pip run. ``python``,
    ``implementation``, ``abis`` and ``platforms`` are what ``pip download`` needs to fetch
    wheels for this node on another machine.
    """
    host = socket.gethostname()
    key = hashlib.sha256(f"{host}\0{sys.prefix}".encode()).hexdigest()[:12]
    short = {"cpython": "cp", "pypy": "pp"}.get(sys.implementation.name, sys.implementation.name)
    return {
        "key": key,
        "host": host,
        "prefix": sys.prefix,
        "executable": sys.executable,
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "implementation": short,
        "abis": _abis(short),
        "platforms": _platforms(),
    }


def _abis(short: str) -> list[str]:
    if short != "cp":
        return ["none"]
    threaded = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    own = f"cp{sys.version_info[0]}{sys.version_info[1]}{threaded}"
    return [own, "none"] if threaded else [own, "abi3", "none"]


def _platforms() -> list[str]:
    """Platform tags in ``packaging.tags`` order (pip expands macOS versions by itself)."""
    plain = re.sub(r"[-. ]", "_", sysconfig.get_platform())
    if not plain.startswith("linux_"):
        return [plain]
    arch = plain[len("linux_") :]
    libc, version = platform.libc_ver()
    tags = [plain]
    if libc == "glibc" and re.fullmatch(r"2\.\d+", version):
        newest = int(version.split(".")[1])
        for minor in range(newest, _OLDEST_GLIBC.get(arch, 17) - 1, -1):
            tags.append(f"manylinux_2_{minor}_{arch}")
            tags += [f"{n}_{arch}" for n, m in _LEGACY_MANYLINUX if m == minor]
    return tags


async def pip_install(
    requirements: list[str],
    options: list[str],
    wheels: dict[str, bytes] | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Install ``requirements`` into this process's environment; return what pip said.

    ``wheels`` (file name -> bytes) are written to a temporary folder that pip gets as
    ``--find-links``; ``options`` are pip's, from the client (``--no-index`` and so on).
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, _install, requirements, options, wheels or {}, timeout)


def _install(
    requirements: list[str], options: list[str], wheels: dict[str, bytes], timeout: float
) -> dict[str, Any]:
    started = time.monotonic()
    env = environment()
    lock = os.path.join(tempfile.gettempdir(), f"shipit-pip-{env['key']}.lock")
    result: dict[str, Any] = {**env, "ok": False, "installed": [], "options": list(options)}
    unobtainable: dict[str, str] = {}  # requirement -> pip's reason
    try:
        with _locked(lock, timeout), tempfile.TemporaryDirectory(prefix="shipit-wheels-") as folder:
            args = list(options)
            if wheels:
                for name, data in wheels.items():
                    with open(os.path.join(folder, os.path.basename(name)), "wb") as f:
                        f.write(data)
                args += ["--find-links", folder]
            result["options"] = args
            wanted, installed = list(requirements), []
            # A requirement pip cannot find fails the whole run: name it and install the
            # others without it, in the same sync.
            while wanted:
                left = max(1.0, timeout - (time.monotonic() - started))
                proc = _pip(args, wanted, left)
                installed += _installed(proc.stdout)
                missing = _unobtainable(proc.stderr, wanted) if proc.returncode else []
                for requirement in missing:
                    unobtainable[requirement] = pip_error(proc.stderr, about=requirement)
                    wanted.remove(requirement)
                if proc.returncode == 0 or not missing:
                    break
    except subprocess.TimeoutExpired:
        error = f"pip did not finish within {timeout:g} s"
        return {**result, "error": error, "seconds": time.monotonic() - started}
    except (TimeoutError, OSError) as e:
        return {**result, "error": str(e), "seconds": time.monotonic() - started}
    out = proc.stdout
    ok = proc.returncode == 0 or not wanted  # every requirement was tried
    errors = [f"{r}: {why}" for r, why in unobtainable.items()]
    if proc.returncode and wanted:
        errors.append(pip_error(proc.stderr))
    return {
        **result,
        "ok": ok and not unobtainable,
        "installed": installed,
        "unobtainable": sorted(unobtainable),
        "error": "; ".join(errors) or None,
        "output": (out + proc.stderr)[-_TAIL:],
        "seconds": time.monotonic() - started,
    }


def _pip(args: list[str], requirements: list[str], timeout: float) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
         "--no-input", *args, *requirements],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )  # fmt: skip


def _installed(stdout: str) -> list[str]:
    found = re.findall(r"^Successfully installed (.+)$", stdout, flags=re.M)
    return found[-1].split() if found else []


# pip's words for a requirement no index or folder it was given can satisfy.
_NOT_FOUND = re.compile(
    r"^ERROR: (?:No matching distribution found for|Could not find a version that satisfies "
    r"the requirement) (\S+)",
    re.M,
)


def _unobtainable(stderr: str, requirements: list[str]) -> list[str]:
    """The requirements pip said it cannot find, as they were given to it."""
    named = set(_NOT_FOUND.findall(stderr))
    return [r for r in requirements if r in named]


@contextlib.contextmanager
def _locked(path: str, timeout: float) -> Iterator[None]:
    """An exclusive lock on ``path`` that other processes on this host respect."""
    deadline = time.monotonic() + timeout
    with open(path, "a") as handle:
        while not _try_lock(handle):
            if time.monotonic() > deadline:
                raise TimeoutError(f"another pip held {path} for {timeout:g} s")
            time.sleep(0.1)
        try:
            yield
        finally:
            _unlock(handle)


def _try_lock(handle: Any) -> bool:
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError, or PermissionError from msvcrt
        return False
    return True


def _unlock(handle: Any) -> None:
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_UN)


def pip_error(stderr: str, about: str | None = None) -> str:
    """pip's own words, shortened: its ERROR lines (those naming ``about``, if given), else
    its last line."""
    errors = [line.strip() for line in stderr.splitlines() if line.startswith("ERROR:")]
    if about is not None:
        errors = [line for line in errors if about in line][-1:] or errors
    lines = errors or [line.strip() for line in stderr.splitlines() if line.strip()][-1:]
    text = " ".join(lines) or "pip failed"
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 3] + "..."
