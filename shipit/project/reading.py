"""Reading files whole (their bytes while their status held still, however they are being
written) and folders as they are."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from ..errors import BadFile, StaleFile

logger = logging.getLogger(__name__)


class WholeFiles(Protocol):
    """What a file watcher knows of files being written (``shipit.watcher.ChangeWatcher``)."""

    def reads_seen(self, path: str) -> int: ...

    def wait_for_reads(self, path: str, count: int) -> int: ...

    def is_whole(
        self, path: str, status: tuple[int, int, int], reads_before: int, reads: int
    ) -> bool | None: ...


def read_settled(path: Path, attempts: int = 5) -> tuple[bytes, tuple[int, int, int]]:
    """A file's bytes, read while it did not change, and its (size, mtime, inode) then.

    A file an editor or a script is writing can be read half-written. Compare its status
    before and after the read, on the open file and at the path (a save by rename swaps the
    file), and read again until they agree. Raises :class:`StaleFile` when it never settles
    and :class:`BadFile` when it cannot be read at all.
    """
    data, key, _ = read_counted(path, attempts)
    return data, key


def read_counted(path: Path, attempts: int) -> tuple[bytes, tuple[int, int, int], int]:
    """``read_settled``, and how many times the file was opened."""
    for attempt in range(attempts):
        try:
            with open(path, "rb") as f:
                before = os.fstat(f.fileno())
                data = f.read()
                after = os.fstat(f.fileno())
            at_path = os.stat(path)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise BadFile(path, e.strerror or str(e)) from None
        key = stat_key(after)
        if stat_key(before) == key == stat_key(at_path) and len(data) == after.st_size:
            return data, key, attempt + 1
        logger.debug("%s changed while it was read; reading it again", path)
        time.sleep(0.01 * 2**attempt)
    raise StaleFile(path)


# Opens and closes of a file just read, for the watcher to see after the read itself: the
# events of reads made before it (this process's own, seen late on a loaded machine) cannot
# then pass for it.
_READ_MARKS = 2


def mark_read(path: Path, times: int = _READ_MARKS) -> int:
    """Open and close ``path`` ``times`` times; how many opens succeeded."""
    done = 0
    for _ in range(times):
        try:
            os.close(os.open(path, os.O_RDONLY))
        except OSError:
            break
        done += 1
    return done


def stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def outermost(folders: Iterable[Path]) -> tuple[Path, ...]:
    kept: list[Path] = []
    for folder in sorted(set(folders), key=lambda f: len(f.parts)):
        if not any(folder.is_relative_to(outer) for outer in kept):
            kept.append(folder)
    return tuple(kept)


def scandir(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except FileNotFoundError as e:  # vanished mid-walk: not part of this snapshot
        logger.debug("cannot list %s: %s", folder, e)
        return []
    except OSError as e:  # a folder of the project left out in silence would surprise
        raise BadFile(folder, e.strerror or str(e)) from None
