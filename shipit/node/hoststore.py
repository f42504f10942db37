"""Where nodes keep shipped files: one store per user and host, shared by the nodes there.

    <home>/files/<sha256>               each content once, read-only
    <home>/versions/<unit>-<digest16>/  a version of a unit: whole, verified, never changed
    <home>/nodes/<role>-<pid>-<id>/     one node's pins: an empty file per version it uses
    <home>/nodes/<role>-<pid>-<id>.lock held (flock) by that node while it lives

A version folder is built under a temporary name, each file linked from ``files/`` (or, where
links fail, written whole from bytes checked against the manifest), and gets its final name
only when complete. So a folder with a version's name holds exactly that version, for every
node of the host: the first node that needs it builds it, the others use it as it is.

Four workers on one machine need the same 2,000 files. Creating a file costs far more than
linking one (2,000 creations took 1 to 2 s on a busy virtual disk here, 30 ms in shared
memory), so shared memory (``/dev/shm``) is used when it has room, else the disk beside
Dask's scratch space, or ``dask.config`` ``shipit.directory`` (``DASK_SHIPIT__DIRECTORY``).

A version stays while a live node pins it; a content stays while a version links it. A node
that died leaves its pins behind with its lock released: the next node to start, or to
collect, deletes them. Where the store cannot be shared (Windows, a folder others can write
to), each node keeps a private one of the same shape.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
import uuid
from collections.abc import Callable, Iterator

from .files import lend_bytecode, remove_tree, write_new
from .protocol import PROTOCOL

logger = logging.getLogger("distributed.shipit")

_SHARED_MEMORY = "/dev/shm"
_MIN_FREE_SHARED_MEMORY = 512 * 2**20  # below this (a container's 64 MB), use the disk


def _base(local_directory: str) -> str:
    import dask.config

    configured = dask.config.get("shipit.directory", None)
    if configured:
        return os.path.expanduser(str(configured))
    with contextlib.suppress(OSError, AttributeError):
        st = os.statvfs(_SHARED_MEMORY)
        if os.access(_SHARED_MEMORY, os.W_OK) and st.f_bavail * st.f_frsize >= (
            _MIN_FREE_SHARED_MEMORY
        ):
            return _SHARED_MEMORY
    return os.path.dirname(os.path.abspath(local_directory))


def version_name(name: str, digest: str) -> str:
    return f"{name}-{digest[:16]}"


class NodeFolder:
    """One node's pins, and the lock that says the node is alive."""

    def __init__(self, path: str, lock_fd: int | None) -> None:
        self.path = path
        self.lock_fd = lock_fd

    def pin(self, version: str) -> None:
        fd = os.open(os.path.join(self.path, version), os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)

    def unpin(self, version: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.path, version))

    def pins(self) -> set[str]:
        try:
            return set(os.listdir(self.path))
        except FileNotFoundError:
            return set()


class HostStore:
    """The store of one host (``shared``) or of one node. Contents in ``files/`` are named by
    the sha256 of their bytes and trusted to match it, so a shared store must be this user's
    and closed to everyone else; where it is not, nothing is shared."""

    def __init__(self, home: str, shared: bool) -> None:
        self.home = home
        self.shared = shared
        self.files = os.path.join(home, "files")
        self.versions = os.path.join(home, "versions")
        self.nodes = os.path.join(home, "nodes")
        self.links = True  # False once the file system refused a hard link
        self._thread_lock = threading.Lock()
        for folder in (self.files, self.versions, self.nodes):
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, 0o700)

    def __repr__(self) -> str:
        return f"HostStore({self.home!r}, shared={self.shared})"

    @classmethod
    def open(cls, local_directory: str) -> HostStore | None:
        """The host's store for a node whose Dask local directory is ``local_directory``,
        or None where one cannot be shared safely."""
        if os.name != "posix":
            return None
        base = _base(local_directory)
        # The layout's version is in the name: an agent of another layout on this host
        # (an older shipit serving another cluster) never reads or cleans this one.
        home = os.path.join(base, f"shipit-{os.getuid()}-v{PROTOCOL}")
        try:
            os.makedirs(base, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(home, 0o700)
            st = os.lstat(home)
            # Nobody else may have written here; read access alone is taken away.
            if st.st_uid != os.getuid() or st.st_mode & 0o022 or not stat.S_ISDIR(st.st_mode):
                logger.warning("shipit: %s is not this user's alone; not sharing files", home)
                return None
            if st.st_mode & 0o077:
                os.chmod(home, 0o700)
            return cls(home, shared=True)
        except OSError as e:
            logger.warning("shipit: no shared store at %s (%s)", home, e)
            return None

    @classmethod
    def private(cls, folder: str) -> HostStore:
        """A store for this node alone, in ``folder``."""
        os.makedirs(folder, exist_ok=True)
        return cls(folder, shared=False)

    # -- nodes -----------------------------------------------------------------------------

    def node_folder(self, role: str) -> NodeFolder:
        """A new folder for one node's pins, marked in use until the process ends. The lock
        file is locked before it gets its name, and named before the folder is made, so no
        other node can ever take this node for a dead one."""
        name = f"{role}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder = os.path.join(self.nodes, name)
        if not self.shared:
            os.makedirs(folder, exist_ok=True)
            return NodeFolder(folder, None)
        import fcntl

        self._remove_dead_nodes()
        tmp = os.path.join(self.nodes, f".{name}.lock-{uuid.uuid4().hex[:8]}")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(tmp, f"{folder}.lock")
            os.makedirs(folder)
        except BaseException:
            os.close(fd)
            for leftover in (tmp, f"{folder}.lock"):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
            raise
        return NodeFolder(folder, fd)

    def release(self, node: NodeFolder) -> None:
        """A node closes: its pins go, then what no other node uses."""
        remove_tree(node.path)
        if node.lock_fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(f"{node.path}.lock")
            os.close(node.lock_fd)
            node.lock_fd = None
        self.collect(wait=True)

    def _live_nodes(self) -> list[str]:
        """The folders of the nodes that are alive; dead nodes' folders are deleted."""
        live = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.nodes) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.name.endswith(".lock"):
                    continue
                if not self.shared or self._alive(entry.path):
                    live.append(entry.path)
        return live

    def _alive(self, folder: str) -> bool:
        import fcntl

        lock = f"{folder}.lock"
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:  # a live node names its lock before it makes its folder
            remove_tree(folder)
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True  # its node holds it
            # Dead: its pins go while its lock is held here, then the lock file.
            remove_tree(folder)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            return False
        finally:
            os.close(fd)

    def _remove_dead_nodes(self) -> None:
        import fcntl

        self._live_nodes()
        with contextlib.suppress(FileNotFoundError), os.scandir(self.nodes) as entries:
            for entry in entries:
                # A lock without a folder: a node about to make its folder (it holds the
                # lock), or one that died before or while it cleaned up (nobody does).
                if not entry.name.endswith(".lock") or os.path.isdir(entry.path[:-5]):
                    continue
                try:
                    fd = os.open(entry.path, os.O_RDWR)
                except FileNotFoundError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                except BlockingIOError:
                    pass
                finally:
                    os.close(fd)

    # -- contents and versions ------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, wait: bool = True) -> Iterator[bool]:
        """Hold the store for this process alone; yields False if busy and ``wait`` is False."""
        if not self.shared:
            got = self._thread_lock.acquire(blocking=wait)
            try:
                yield got
            finally:
                if got:
                    self._thread_lock.release()
            return
        import fcntl

        with self._thread_lock:
            fd = os.open(os.path.join(self.home, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                yield True
            finally:
                os.close(fd)  # releases the lock

    def content_path(self, digest: str) -> str:
        return os.path.join(self.files, digest)

    def has(self, digest: str) -> bool:
        return os.path.exists(self.content_path(digest))

    def version_path(self, name: str, digest: str) -> str:
        return os.path.join(self.versions, version_name(name, digest))

    def build(
        self,
        name: str,
        digest: str,
        manifest: dict[str, str],
        content: Callable[[str], bytes],
        previous: tuple[str, dict[str, str]] | None = None,
    ) -> str:
        """The folder of this version of a unit, built if no node of the host has yet.

        ``content(digest)`` gives a file's bytes, already checked against its digest, where
        the store does not hold them; ``previous`` (a folder and its manifest) lends the
        bytecode of files that did not change.
        """
        final = self.version_path(name, digest)
        with self.locked():
            if os.path.isdir(final):
                return final
            tmp = os.path.join(
                self.versions, f".{version_name(name, digest)}-{uuid.uuid4().hex[:8]}"
            )
            try:
                made: dict[str, str] = {}  # each folder, and the first file put in it
                for rel, file_digest in manifest.items():
                    dest = os.path.join(tmp, *rel.split("/"))
                    folder = os.path.dirname(dest)
                    if folder not in made:
                        os.makedirs(folder, exist_ok=True)
                        made[folder] = rel
                    self._place(file_digest, dest, content)
                os.makedirs(tmp, exist_ok=True)  # a unit with no files is still a folder
                if previous is not None:
                    lend_bytecode(previous[0], previous[1], tmp, manifest)
                os.rename(tmp, final)
            except BaseException:
                remove_tree(tmp)
                raise
            # A driver that loses a folder's files when it renames it (fusefat does) must
            # not leave a version's name on what is left: one file per folder, checked.
            for rel in made.values():
                if not os.path.isfile(os.path.join(final, *rel.split("/"))):
                    self._discard(final)
                    raise OSError(
                        f"{self.home}: this file system lost {rel} when it renamed the "
                        "folder holding it; it cannot hold shipped files"
                    )
        return final

    def _place(self, digest: str, dest: str, content: Callable[[str], bytes]) -> None:
        """Put a content at ``dest``: a link to the stored copy, else a copy of its own.
        ``O_EXCL``: two manifest entries the file system takes for one (case) never merge."""
        stored = self.content_path(digest)
        if self.links:
            if self._link(stored, dest):
                return
            if self.links and not os.path.exists(stored):
                write_new(f"{stored}.tmp-{uuid.uuid4().hex[:8]}", content(digest), into=stored)
                if self._link(stored, dest):
                    return
        # No link (another file system, FAT, a content at its link limit): a copy.
        try:
            with open(stored, "rb") as f:
                data = f.read()
        except OSError:
            data = content(digest)
        write_new(dest, data)

    def _link(self, source: str, dest: str) -> bool:
        """Hard-link ``source`` to ``dest``; False where the content is not stored or cannot
        be linked. A file system that links nothing (FAT, another device, a macOS volume
        that says EOPNOTSUPP) is not asked again; a content at its limit (EMLINK) is copied."""
        try:
            os.link(source, dest)
        except FileExistsError:
            raise
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EMLINK):
                logger.info("shipit: %s cannot hold links (%s); copying files", self.home, e)
                self.links = False
            return False
        return True

    def collect(self, wait: bool = False) -> None:
        """Delete versions no live node pins and contents no version links. Never while
        another node holds the store (it may be about to link what looks unused): skipped
        unless ``wait``."""
        with self.locked(wait) as mine:
            if not mine:
                return
            pinned: set[str] = set()
            for node in self._live_nodes():
                pinned |= NodeFolder(node, None).pins()
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(self.versions):
                    if name not in pinned:  # left over, or half-built by a node that died
                        self._discard(os.path.join(self.versions, name))
            with contextlib.suppress(FileNotFoundError), os.scandir(self.files) as entries:
                for entry in entries:
                    with contextlib.suppress(FileNotFoundError):
                        if entry.stat(follow_symlinks=False).st_nlink == 1:
                            os.unlink(entry.path)

    def _discard(self, folder: str) -> None:
        """Delete a version folder, which first loses its version's name: one that cannot be
        deleted whole (an undeletable file, a file Windows holds open) must not keep that
        name with part of its files gone, or the next build of the version would take it for
        whole. Where even the rename fails, it stays whole, for the next collection."""
        if not os.path.basename(folder).startswith("."):
            gone = os.path.join(self.versions, f".gone-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(folder, gone)
            except OSError:
                return
            folder = gone
        remove_tree(folder)
