"""Names no unit may take: the modules every node imports to run at all.

A unit named ``json`` or ``tornado`` would be found before the real one on every node, where
the scheduler's and the workers' own imports would load it too. What counts: the standard
library of the client's Python, and the import names of ``distributed`` and of everything it
requires (its dependencies' dependencies too, extras aside) as installed here. Read from the
installed distributions' metadata, never by importing them.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Iterable
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import InsidePackage, ShadowsNodeModule

logger = logging.getLogger(__name__)

# What the nodes need whatever the client's metadata says: a distributed installed without
# its metadata (a vendored copy, a frozen build) still keeps these.
_FLOOR = frozenset(
    ("dask", "distributed", "tornado", "cloudpickle", "msgpack", "toolz", "tlz", "zict",
     "tblib", "psutil", "yaml", "sortedcontainers", "partd", "locket", "fsspec")
)  # fmt: skip


def refuse_package_folder(root: Path) -> None:
    """A project folder that holds ``__init__.py`` and no pyproject.toml is a package folder
    (``rich/rich``): the project is the nearest folder above it that is not a package."""
    if not (root / "__init__.py").is_file() or (root / "pyproject.toml").is_file():
        return
    outer = root.parent
    while (outer / "__init__.py").is_file() and outer.parent != outer:
        outer = outer.parent
    for above in (outer, outer.parent):  # src/pkg: the project is the folder above src/
        if any((above / name).is_file() for name in ("pyproject.toml", "setup.py", "setup.cfg")):
            outer = above
            break
    raise InsidePackage(root, outer)


def refuse_shadowing(units: Iterable[tuple[str, Path]]) -> None:
    """Raise :class:`ShadowsNodeModule` for the (name, first file) pairs whose name a unit
    may not take."""
    shadowing = [
        (name, str(path), what) for name, path in units if (what := what_it_replaces(name))
    ]
    if shadowing:
        raise ShadowsNodeModule(shadowing)


def what_it_replaces(name: str) -> str | None:
    """What a unit of this name would replace on every node, or None when it may ship.

    >>> what_it_replaces("json"), what_it_replaces("tornado"), what_it_replaces("montecarlo")
    ("the standard library's json", 'tornado, which Dask needs', None)
    """
    if name in sys.stdlib_module_names:
        return f"the standard library's {name}"
    if name in dask_stack():
        return f"{name}, which Dask needs"
    return None


@functools.cache
def dask_stack() -> frozenset[str]:
    """The top-level import names of distributed and of all it requires, installed here."""
    names = set(_FLOOR)
    seen: set[str] = set()
    wanted = ["distributed"]
    while wanted:
        project = wanted.pop()
        if project in seen:
            continue
        seen.add(project)
        try:
            dist = distribution(project)
        except PackageNotFoundError:
            continue
        names |= _import_names(dist)
        wanted += _required(dist.requires or ())
    return frozenset(names)


def _required(requirements: Iterable[str]) -> list[str]:
    """The projects a distribution requires in this environment, its extras left out."""
    out: list[str] = []
    for line in requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            logger.debug("unreadable requirement %r", line)
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.append(canonicalize_name(req.name))
    return out


def _import_names(dist: Distribution) -> set[str]:
    top = dist.read_text("top_level.txt")
    if top:
        return {line.strip() for line in top.splitlines() if line.strip().isidentifier()}
    names = set()
    for path in dist.files or ():
        head = path.parts[0] if path.parts else ""
        if head.endswith(".py"):
            head = head[:-3]
        if head.isidentifier() and not head.endswith((".dist-info", ".data")):
            names.add(head)
    return names
