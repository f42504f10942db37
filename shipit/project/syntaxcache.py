"""Which sources are known to compile, remembered across runs on this machine.

Compiling is the slow part of packing (about 5 MB of source per second per core): a 20 MB
package takes seconds. A file's content decides whether it compiles, under one Python, so the
sha256 of every source that compiled is appended to a file in the user's cache; the next
``shipit sync`` or ``shipit watch`` of the same files compiles none of them again.

The folder is ``$SHIPIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/shipit``, else ``~/.cache/shipit``.
Anything that goes wrong with it only means compiling again.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

# Past this many lines the file is rewritten with its newest half (about 13 MB at most).
_MAX_LINES = 200_000
_DIGEST_LENGTH = 64


def cache_dir() -> Path:
    explicit = os.environ.get("SHIPIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "shipit"


class SyntaxCache:
    """The digests of sources that compiled under this Python's version of the language."""

    def __init__(self, folder: Path | None = None) -> None:
        tag = f"{sys.implementation.name}-{sys.version_info.major}.{sys.version_info.minor}"
        self.path = (folder or cache_dir()) / f"compiled-{tag}.txt"
        self._known: set[str] | None = None
        self._lines = 0

    def known(self) -> set[str]:
        if self._known is None:
            self._known = set()
            try:
                lines = self.path.read_text("ascii", errors="replace").splitlines()
            except OSError:
                lines = []
            self._lines = len(lines)
            # A line cut short by a crash mid-append is no digest: skip it.
            self._known = {line for line in lines if len(line) == _DIGEST_LENGTH}
        return self._known

    def add(self, digests: Iterable[str]) -> None:
        new = [d for d in digests if d not in self.known()]
        if not new:
            return
        assert self._known is not None
        self._known.update(new)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._lines + len(new) > _MAX_LINES:
                self._rewrite(new)
            else:
                # One append: concurrent shipit runs interleave whole blocks, not lines.
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, "".join(f"{d}\n" for d in new).encode("ascii"))
                finally:
                    os.close(fd)
                self._lines += len(new)
        except OSError as e:
            logger.debug("syntax cache not written (%s); files compile again next time", e)

    def _rewrite(self, new: list[str]) -> None:
        try:
            old = self.path.read_text("ascii", errors="replace").splitlines()
        except OSError:
            old = []
        kept = [line for line in old if len(line) == _DIGEST_LENGTH][-_MAX_LINES // 2 :] + new
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text("".join(f"{d}\n" for d in kept), "ascii")
        os.replace(tmp, self.path)
        self._known, self._lines = set(kept), len(kept)
