"""What the code imports, read as text: the user's code is never imported or run."""

from __future__ import annotations

import bisect
import hashlib
import inspect
import itertools
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from importlib.metadata import Distribution
from importlib.metadata import distributions as installed
from pathlib import Path

logger = logging.getLogger(__name__)


# An import statement at the start of a line (indented ones too: imports inside functions and
# try blocks run on workers as well). A text scan, not ast: ast.parse reads about 2 MB/s, which
# made a 20 MB project take seconds per scan; this reads about 200 MB/s. Its price: a line in a
# docstring that starts with "import x" counts too, which at worst compares one more package.
_IMPORT_LINE = re.compile(
    rb"^[ \t]*(?:import[ \t]+([^\n#;]+)|from[ \t]+([A-Za-z_][\w.]*)[ \t]+import\b)", re.M
)
_NAME = re.compile(r"[A-Za-z_]\w*")
_ANY_IMPORT_LINE = re.compile(rb"^[ \t]*(?:import[ \t]|from[ \t]+[\w.]+[ \t]+import\b)", re.M)
# Names imported by each content seen, by its digest: discovery and the version check read
# the same files in one sync, and a watch reads them again and again.
_seen: dict[bytes, frozenset[str]] = {}
_SEEN_MAX = 100_000


def imported_names(paths: Iterable[Path]) -> frozenset[str]:
    """Top-level module names that absolute imports in these ``.py`` files name.

    Relative imports name the file's own package, so they are skipped. The files are read as
    text, never imported or run.

    Example::

        imported_names([Path("job.py")])  # job.py: import numpy.linalg; from .util import f
        # frozenset({'numpy'})
    """
    names: set[str] = set()
    for path in paths:
        try:
            source = path.read_bytes()
        except OSError as e:
            logger.debug("imports of %s not read: %s", path, e)
            continue
        key = hashlib.sha256(source).digest()
        found = _seen.get(key)
        if found is None:
            if len(_seen) >= _SEEN_MAX:
                _seen.clear()
            found = _seen[key] = names_in(source)
        names.update(found)
    return frozenset(names)


def optional_names(paths: Iterable[Path]) -> frozenset[str]:
    """Top-level names these files import only where a failed import is caught (see
    :func:`guarded_names`): in none of them is the import plain."""
    guarded: set[str] = set()
    plain: set[str] = set()
    for path in paths:
        try:
            source = path.read_bytes()
        except OSError:
            continue
        here = guarded_names(source)
        guarded |= here
        plain |= names_in(source) - here
    return frozenset(guarded - plain)


def names_in(source: bytes) -> frozenset[str]:
    """Top-level module names that absolute imports in this source name.

    >>> sorted(names_in(b"import numpy.linalg, os\\nfrom .util import f\\nfrom a.b import c\\n"))
    ['a', 'numpy', 'os']
    """
    return frozenset(_absolute_imports(source))


# A handler that may guard an import: one that catches ImportError, ModuleNotFoundError,
# Exception or anything. Only sources with one are parsed to tell optional imports apart.
_MAY_GUARD = re.compile(
    rb"\bexcept\b[ \t]*(?::|[^\n:]*\b(?:ImportError|ModuleNotFoundError|Exception))"
)
_CATCHES_IMPORT_ERRORS = frozenset(
    {b"ImportError", b"ModuleNotFoundError", b"Exception", b"BaseException"}
)


def guarded_names(source: bytes) -> frozenset[str]:
    """Top-level names this source imports only inside a ``try`` whose handler catches a
    failed import (``ImportError``, ``ModuleNotFoundError``, ``Exception``, or anything):
    the code runs without them, so they are optional. A handler's own imports (the
    fallback) and every import outside such a ``try`` are not guarded; a ``try`` outside the
    function an import sits in does not guard it.

    A text scan like :func:`names_in`: only the lines around an indented import are read,
    and only in a source where such a handler appears at all.

    >>> sorted(guarded_names(b"import a\\ntry:\\n import b, a\\nexcept ImportError:\\n b = None"))
    ['b']
    >>> sorted(guarded_names(b"try:\\n import ujson as json\\nexcept ImportError:\\n import json"))
    ['ujson']
    """
    if b"except" not in source or not _MAY_GUARD.search(source):
        return frozenset()
    lines: list[bytes] = []
    starts: list[int] = []
    guarded: set[str] = set()
    plain: set[str] = set()
    for match in _IMPORT_LINE.finditer(source):
        names = set(_names_of(match))
        if source[match.start() : match.start() + 1] not in (b" ", b"\t"):
            plain |= names  # at the top level of the module: no block around it
            continue
        if not lines:  # split only for a source with an indented import
            lines = source.split(b"\n")
            starts = list(itertools.accumulate((len(line) + 1 for line in lines), initial=0))
        at = bisect.bisect_right(starts, match.start()) - 1
        (guarded if _in_guarding_try(lines, at) else plain).update(names)
    return frozenset(guarded - plain)


def _indent(line: bytes) -> int | None:
    """The indentation of a line of code; None for a blank or comment line."""
    text = line.lstrip(b" \t")
    return None if not text or text.startswith(b"#") else len(line) - len(text)


def _in_guarding_try(lines: list[bytes], at: int) -> bool:
    """Whether line ``at`` lies in the body of a ``try`` that catches a failed import, in
    the same function: each enclosing block is found by walking back to a line indented
    less."""
    indent = _indent(lines[at]) or 0
    for i in range(at - 1, -1, -1):
        if indent == 0:
            return False
        here = _indent(lines[i])
        if here is None or here >= indent:
            continue
        header = lines[i].strip()
        if header.startswith((b"def ", b"async def ", b"class ")):
            return False
        if header == b"try:" and _catches_import_errors(lines, i, here):
            return True
        indent = here
    return False


def _catches_import_errors(lines: list[bytes], at: int, indent: int) -> bool:
    """Whether the ``try`` on line ``at`` has a handler for a failed import."""
    for line in lines[at + 1 :]:
        here = _indent(line)
        if here is None or here > indent:
            continue
        clause = line.strip()
        if here < indent or not clause.startswith(b"except"):
            return False
        caught = clause[len(b"except") :].partition(b":")[0].replace(b"*", b" ")
        names = {n.rpartition(b".")[2] for n in re.findall(rb"[\w.]+", caught)}
        if not caught.strip() or names & _CATCHES_IMPORT_ERRORS:  # a bare except, or one
            return True  # naming it (a clause over several lines is read as not)
    return False


def _names_of(match: re.Match[bytes]) -> Iterator[str]:
    imported, module = match.groups()
    if module is not None:  # from a.b import c; a relative "from .x" does not match
        yield module.decode().partition(".")[0]
        return
    for part in imported.decode(errors="replace").split(","):  # import a.b as x, c
        name = _NAME.match(part.strip())
        if name is not None:
            yield name.group()


def _absolute_imports(source: bytes) -> Iterator[str]:
    for match in _IMPORT_LINE.finditer(source):
        yield from _names_of(match)


def top_level_names(distribution: Distribution) -> frozenset[str]:
    """Import names a distribution installs, as ``packages_distributions()`` reads them.

    Uses ``top_level.txt`` when present, else the first part of each installed file.
    Editable-install helpers (``__editable__…``) are not import names a user writes.

    >>> sorted(top_level_names(Distribution.from_name("pytest")))
    ['_pytest', 'py', 'pytest']
    """
    declared = (distribution.read_text("top_level.txt") or "").split()
    names = declared or {_top_level_name(Path(file)) for file in distribution.files or ()}
    return frozenset(
        name for name in names if name.isidentifier() and not name.startswith("__editable__")
    )


def _top_level_name(file: Path) -> str:
    return file.parts[0] if len(file.parts) > 1 else inspect.getmodulename(file.name) or file.name


def distributions_for(
    names: Iterable[str], distributions: Iterable[Distribution] | None = None
) -> dict[str, list[str]]:
    """Map each top-level import name to the installed distributions that provide it.

    Standard-library names and names no distribution provides are left out. ``distributions``
    defaults to the running environment's, in ``sys.path`` order.

    >>> distributions_for({"os", "yaml", "mylocal"})
    {'yaml': ['PyYAML']}
    """
    wanted = {name for name in names if name not in sys.stdlib_module_names}
    if not wanted:  # reading every installed distribution's file list takes a while
        return {}
    # Not packages_distributions(): on Python 3.10 it reads only top_level.txt, which many
    # wheels (built by hatchling, flit, pdm) lack, so their packages would drop out.
    provided: dict[str, list[str]] = {}
    for dist in installed() if distributions is None else distributions:
        for name in top_level_names(dist):
            provided.setdefault(name, []).append(dist.metadata["Name"])
    return {
        name: list(dict.fromkeys(provided[name]))  # one entry per distribution, sys.path order
        for name in sorted(wanted)
        if name in provided
    }


def imports_module(source: bytes, module: str) -> bool:
    """Whether ``source`` may import the module whose last name is ``module`` (``_version``):
    ``from ._version import v``, ``from . import _version``, ``import pkg._version``. A text
    scan that errs towards yes.

    >>> imports_module(b"from ._version import version", "_version")
    True
    >>> imports_module(b"version = '1'", "_version")
    False
    """
    word = re.compile(rb"(?<![\w])" + re.escape(module.encode()) + rb"(?![\w])")
    for match in _ANY_IMPORT_LINE.finditer(source):
        end = source.find(b"\n", match.start())
        if word.search(source, match.start(), len(source) if end < 0 else end):
            return True
    return False
