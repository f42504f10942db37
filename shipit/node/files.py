"""File work of the node store that knows nothing of stores: deleting trees with read-only
files, writing a whole new file, lending bytecode from one version folder to the next."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
from typing import Any

_READ_ONLY = 0o444


def remove_tree(path: str) -> None:
    """Delete a folder whose files may be read-only (Windows refuses to delete those)."""

    def writable(func: Any, target: str, *_: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(target, stat.S_IWRITE | stat.S_IREAD)
            func(target)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=writable)
    else:
        shutil.rmtree(path, onerror=writable)
    if os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)


def write_new(path: str, data: bytes, into: str | None = None) -> None:
    """Write a whole new file; with ``into``, then give it that name (never half a file
    under a name that says it is whole)."""
    mode = _READ_ONLY if os.name == "posix" else 0o666
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with open(fd, "wb", closefd=False) as f:
            f.write(data)
    finally:
        os.close(fd)
    if into is not None:
        try:
            os.replace(path, into)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise


def lend_bytecode(
    old: str, old_manifest: dict[str, str], new: str, manifest: dict[str, str]
) -> None:
    """Link the cached bytecode of every source that did not change into the new folder.
    The source is the same file (a link to the same content, same mtime), so the cache
    stays valid and the node does not compile the file again."""
    stems: dict[str, set[str]] = {}
    for rel, digest in manifest.items():
        if rel.endswith(".py") and old_manifest.get(rel) == digest:
            folder, _, file = rel.rpartition("/")
            stems.setdefault(folder, set()).add(file[:-3])
    for folder, unchanged in stems.items():
        parts = folder.split("/") if folder else []
        cache = os.path.join(old, *parts, "__pycache__")
        try:
            cached = [c for c in os.listdir(cache) if c.partition(".")[0] in unchanged]
        except OSError:
            continue
        if not cached:
            continue
        target = os.path.join(new, *parts, "__pycache__")
        os.makedirs(target, exist_ok=True)
        for file in cached:
            with contextlib.suppress(OSError):
                os.link(os.path.join(cache, file), os.path.join(target, file))
