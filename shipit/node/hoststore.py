"""Where nodes keep shipped files: one store per user and host, shared by its nodes.

Runs on nodes, next to ``shipit.remote``: the standard library and Dask only, pickled by value.

Four workers on one machine need the same 2,000 files. Creating a file costs far more than
linking one (an inode, not only a name: 2,000 creations took 1 to 2 s on a busy virtual disk
here, 30 ms in shared memory), so the first node to need a content writes it into the store
once, under a lock held across processes, and every node's version folders hard-link it. A
content that no folder links any more has one link left, and is deleted.

The store lives in ``dask.config`` ``shipit.directory`` if set (``DASK_SHIPIT__DIRECTORY``),
else in shared memory (``/dev/shm``) when it has room, else beside Dask's scratch space. Shipped
files are a copy of the client's, deleted when their node closes; a node that died leaves
its folder behind, and the next node to start on the host deletes it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import uuid
from collections.abc import Iterator

logger = logging.getLogger("distributed.shipit")

_SHARED_MEMORY = "/dev/shm"
_MIN_FREE_SHARED_MEMORY = 512 * 2**20  # below this (a container's 64 MB), use the disk


def _base(local_directory: str) -> str:
    import dask.config

    configured = dask.config.get("shipit.directory", None)
    if configured:
        return os.path.expanduser(str(configured))
    with contextlib.suppress(OSError):
        st = os.statvfs(_SHARED_MEMORY)
        if os.access(_SHARED_MEMORY, os.W_OK) and st.f_bavail * st.f_frsize >= (
            _MIN_FREE_SHARED_MEMORY
        ):
            return _SHARED_MEMORY
    return os.path.dirname(os.path.abspath(local_directory))


class HostStore:
    """A private folder: ``files/`` holds read-only contents named by the sha256 of their
    bytes; each node's version folders sit beside it, each node holding a lock on its own.

    A content found here is trusted to match its name, so the folder must be this user's
    and closed to everyone else; where it is not, nothing is shared.
    """

    def __init__(self, home: str) -> None:
        self.home = home
        self.directory = os.path.join(home, "files")

    def __repr__(self) -> str:
        return f"HostStore({self.home!r})"

    @classmethod
    def open(cls, local_directory: str) -> HostStore | None:
        """The store for a node whose Dask local directory is ``local_directory``, or None
        where one cannot be shared safely (then the node keeps its own copies there)."""
        if os.name != "posix":
            return None
        base = _base(local_directory)
        home = os.path.join(base, f"shipit-{os.getuid()}")
        try:
            os.makedirs(base, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(home, 0o700)
            st = os.lstat(home)
            # Nobody else may have written here; read access alone is taken away.
            if st.st_uid != os.getuid() or st.st_mode & 0o022 or not os.path.isdir(home):
                logger.warning("shipit: %s is not this user's alone; not sharing files", home)
                return None
            if st.st_mode & 0o077:
                os.chmod(home, 0o700)
            with contextlib.suppress(FileExistsError):
                os.mkdir(os.path.join(home, "files"), 0o700)
        except OSError as e:
            logger.warning("shipit: no shared store at %s (%s)", home, e)
            return None
        return cls(home)

    def node_folder(self, role: str) -> tuple[str, int]:
        """A new folder for one node's versions and the descriptor of the lock that marks it
        in use (held until the process ends); folders of nodes that died are deleted."""
        import fcntl

        self._remove_dead_nodes()
        folder = os.path.join(self.home, f"{role}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        fd = os.open(f"{folder}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.makedirs(folder, exist_ok=True)
        return folder, fd

    def _remove_dead_nodes(self) -> None:
        import fcntl

        with contextlib.suppress(FileNotFoundError), os.scandir(self.home) as entries:
            for entry in entries:
                if not entry.name.endswith(".lock"):
                    continue
                try:
                    fd = os.open(entry.path, os.O_RDWR)
                except FileNotFoundError:  # another node just cleaned it up
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its node is alive
                finally:
                    os.close(fd)
                shutil.rmtree(entry.path[: -len(".lock")], ignore_errors=True)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        self.collect()

    def path(self, digest: str) -> str:
        return os.path.join(self.directory, digest)

    @contextlib.contextmanager
    def locked(self, wait: bool = True) -> Iterator[bool]:
        """Hold the store for this process alone; yields False if busy and ``wait`` is False."""
        import fcntl

        fd = os.open(os.path.join(self.home, ".files.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    def adopt(self, digest: str, path: str) -> bool:
        """Store the complete file at ``path``, already checked against ``digest``, by linking
        it in; False where it cannot be linked (then nothing is shared)."""
        return self._link(path, self.path(digest), exists_ok=True)

    def link(self, digest: str, dest: str) -> bool:
        """Hard-link a stored content to ``dest``; False if it is not stored or cannot link."""
        return self._link(self.path(digest), dest)

    @staticmethod
    def _link(source: str, dest: str, exists_ok: bool = False) -> bool:
        try:
            os.link(source, dest)
        except FileNotFoundError:
            return False
        except FileExistsError:
            if not exists_ok:
                raise
        except OSError as e:  # another file system, too many links, links not supported
            if e.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM, errno.ENOTSUP):
                raise
            return False
        return True

    def collect(self, wait: bool = False) -> int:
        """Delete contents no version folder links any more. Never while another node holds
        the store (it may be about to link what looks unused): skipped unless ``wait``."""
        removed = 0
        with self.locked(wait) as mine:
            if not mine:
                return 0
            with contextlib.suppress(FileNotFoundError), os.scandir(self.directory) as entries:
                for entry in entries:
                    try:
                        if entry.stat(follow_symlinks=False).st_nlink == 1:
                            os.unlink(entry.path)
                            removed += 1
                    except FileNotFoundError:
                        continue
        return removed
