"""Find what to ship from a project folder: its modules and packages, and which of their files.

Everything is decided from names on disk, pyproject.toml and .gitignore files; the user's code
is never imported or run. One set of rules serves both the full walk (``Project.units``) and the
per-file question a watcher asks (``Project.unit_name_for``), so the two always agree.
"""

from __future__ import annotations

import keyword
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from importlib.metadata import Distribution
from operator import attrgetter
from pathlib import Path

from ..config import Config, load_config
from ..errors import ConfigError, UsageError
from .entries import shippable
from .imports import imported_names, imports_module
from .layout import declared_units, is_namespace, layout, version_files
from .metadata import carrier, dist_info
from .reading import outermost, scandir
from .rules import Rules, is_secret, join
from .shadow import refuse_package_folder, refuse_shadowing
from .siblings import EditableInstall, editable_installs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unit:
    """One importable top-level module or package, and the files that make it up."""

    name: str  # import name: "pkg" for a package folder, "mod" for mod.py
    root: Path  # absolute source root that holds it (the folder that must be on sys.path)
    files: tuple[str, ...]  # sorted POSIX paths relative to root
    origin: str = "project"  # or "editable:<distribution name>"
    # Files made by shipit, not on disk: the project's .dist-info (path -> bytes).
    generated: tuple[tuple[str, bytes], ...] = ()


def discover(config: Config) -> list[Unit]:
    """The units to ship, sorted by name, editable siblings the code imports included.

    >>> [(u.name, u.files[0]) for u in discover(load_config("examples/montecarlo"))]
    [('montecarlo', 'montecarlo/__init__.py')]
    """
    return Project(config).units()


def editable_units(
    config: Config, distributions: Iterable[Distribution] | None = None
) -> list[Unit]:
    """Units of other projects installed in editable mode that the project's code imports.

    ``distributions`` defaults to those of the running environment.

    Example::

        [(u.name, u.origin) for u in editable_units(load_config("."))]
        # [('mylib', 'editable:mylib')]
    """
    siblings = Project(config, distributions=distributions)._editable_siblings()
    return sorted((unit for s in siblings for unit in s.units()), key=attrgetter("name"))


class Project:
    """The units of one project folder, and a fast answer to "would this file ship, and where?".

    Folder verdicts and .gitignore files are cached: call ``reload_ignores()`` when a
    .gitignore changes, and build a new ``Project`` when pyproject.toml does.

    Example::

        project = Project(load_config("."))
        project.unit_name_for("src/pkg/sub.py"), project.unit_name_for("tests/test_sub.py")
        # ('pkg', None)
    """

    def __init__(
        self,
        config: Config,
        *,
        distributions: Iterable[Distribution] | None = None,
        find_editable: bool = True,
        imports_of: Callable[[Iterable[Unit]], frozenset[str]] | None = None,
    ) -> None:
        self.root = config.root.resolve()
        if find_editable:  # the folder the user ran shipit in (an editable install is not)
            refuse_package_folder(self.root)
        self._prefixes, self._named_packages = layout(self.root, config.pyproject)
        self._declared = declared_units(config.pyproject)  # the build's own list, if it has one
        self.source_roots = tuple(self.root / prefix for prefix in self._prefixes)
        # Deepest first, so src/pkg/x.py is looked up in src/ before the project root.
        self._folders_deepest_first = sorted(
            ((str(self.root / prefix), prefix) for prefix in self._prefixes),
            key=lambda pair: -len(pair[1]),
        )
        self._rules = Rules(self.root, config, self._prefixes)
        self._distributions = None if distributions is None else list(distributions)
        self._find_editable = find_editable
        # How to learn the names units import: plan() hands its packer's, which reads each
        # file once for the hash, the syntax check and the imports.
        self._imports_of = imports_of or _imported_names
        self._siblings: tuple[Sibling, ...] | None = None
        self._pyproject = config.pyproject
        self._dist_info: dict[str, bytes] | None = None
        self.readmitted: dict[Path, str] = {}  # files the last walk shipped despite .gitignore
        self._known_packages: frozenset[str] = frozenset()

    def reload_ignores(self) -> None:
        """Re-read .gitignore files, here and in editable siblings."""
        self._rules.reload()
        for sibling in self._siblings or ():
            sibling.project.reload_ignores()

    @property
    def watch_roots(self) -> tuple[Path, ...]:
        """Folders to watch recursively: the source roots here and in editable siblings,
        without those inside another."""
        roots = [*self.source_roots]
        roots += [root for s in self._editable_siblings() for root in s.project.source_roots]
        return outermost(roots)

    def units(self) -> list[Unit]:
        """Walk the source roots now: this project's units and its editable siblings', by name."""
        own = self._own_units()
        if self._siblings is None:  # the first walk finds them, walking each once
            self._siblings, sibling_units = self._find_siblings(own)
        else:
            sibling_units = [unit for s in self._siblings for unit in s.units()]
        if self._find_editable:  # the project itself (a sibling carries its own)
            own = self._with_metadata(own, None)
        units = _unique(own + sibling_units)
        refuse_shadowing((u.name, u.root / u.files[0]) for u in units)
        return units

    def _with_metadata(self, units: list[Unit], distribution: str | None) -> list[Unit]:
        """``units`` with the distribution's .dist-info on one of them (read once)."""
        if self._dist_info is None:
            self._dist_info = dist_info(
                self.root, self._pyproject, self._distributions, distribution
            )
        if not self._dist_info:
            return units
        name = next(iter(self._dist_info)).partition("-")[0]  # "my_lib-1.2.dist-info/..."
        carried_by = carrier((u.name for u in units), name)
        generated = tuple(self._dist_info.items())
        return [replace(u, generated=generated) if u.name == carried_by else u for u in units]

    def held_back(self) -> dict[Path, str]:
        """Files inside units that the last walk left out by name as secrets: path -> why."""
        projects = [self, *(s.project for s in self._siblings or ())]
        return {p.root / rel: why for p in projects for rel, why in p._rules.held_back.items()}

    def shipped_though_ignored(self) -> dict[Path, str]:
        """Files the last walk shipped though .gitignore lists them: path -> why."""
        projects = [self, *(s.project for s in self._siblings or ())]
        return {path: why for p in projects for path, why in p.readmitted.items()}

    def unit_name_for(self, path: str | os.PathLike[str]) -> str | None:
        """The unit this file ships in, or None when it would not ship.

        ``path`` names a file, which may have just been deleted; a relative path is taken from
        the current directory. A package seen by the last ``units()`` still answers, so
        deleting its ``__init__.py`` is noticed.
        """
        absolute = os.path.abspath(path)
        name = self._own_unit_name_for(absolute)
        for sibling in self._editable_siblings() if name is None else ():
            name = sibling.unit_name_for(absolute)
            if name is not None:
                break
        return name

    def _editable_siblings(self) -> tuple[Sibling, ...]:
        # Found once per Project: the set changes only when imports or installs change.
        if self._siblings is None:
            self._siblings, _ = self._find_siblings(self._own_units())
        return self._siblings

    def _find_siblings(self, own: list[Unit]) -> tuple[tuple[Sibling, ...], list[Unit]]:
        """The editable installs the units import, directly or through one another, and
        their units. An install's pyproject.toml is read only once the code imports a name it
        provides, or, for an install whose metadata names nothing, once the code imports any
        name that neither the project nor the standard library provides."""
        if not self._find_editable:
            return (), []
        seen = {unit.name for unit in own} | set(sys.stdlib_module_names)
        wanted = set(self._imports_of(own)) - seen
        if not wanted:
            return (), []
        by_name: dict[str, list[Sibling]] = {}
        for install in editable_installs(self.root, self._distributions):
            sibling = Sibling(install, self._imports_of)
            for name in install.names or sibling.unit_heads():
                by_name.setdefault(name, []).append(sibling)
        found: dict[str, Sibling] = {}
        units: list[Unit] = []
        while wanted:
            name = min(wanted)  # not pop(): the same order, and the same log, on every run
            wanted.discard(name)
            seen.add(name)
            for sibling in by_name.get(name, ()):
                if sibling.distribution not in found:
                    logger.info(
                        "shipping editable %s: the code imports %s", sibling.distribution, name
                    )
                    found[sibling.distribution] = sibling
                    sibling_units = sibling.units()
                    units += sibling_units
                    seen |= {unit.name for unit in sibling_units}
                    wanted |= self._imports_of(sibling_units) - seen
        return tuple(found.values()), units

    def _own_unit_name_for(self, absolute: str) -> str | None:
        for folder, prefix in self._folders_deepest_first:
            if not absolute.startswith(folder + os.sep):
                continue
            top, _, rest = absolute[len(folder) + 1 :].replace(os.sep, "/").partition("/")
            head = join(prefix, top)
            if not rest:
                if self._is_module(head):
                    return top[:-3]
                continue
            is_package = head in self._known_packages or self._is_package(head)
            if is_package and self._rules.ships(f"{head}/{rest}"):
                return top
        return None

    def _unit_heads(self) -> list[_Head]:
        heads = []
        for prefix in self._prefixes:
            if not self._rules.enters(prefix):
                continue
            for entry in scandir(self.root / prefix):
                rel = join(prefix, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    if self._is_package(rel):
                        heads.append(_Head(entry.name, prefix, rel, is_package=True))
                elif self._is_module(rel) and shippable(entry, rel, self.root, is_secret):
                    heads.append(_Head(entry.name[:-3], prefix, rel, is_package=False))
        return heads

    def _own_units(self) -> list[Unit]:
        units = []
        self._rules.held_back.clear()  # what this walk holds back, or ships after all
        self._rules.git_ignored_modules.clear()
        self.readmitted = {}
        heads = self._unit_heads()
        for head in heads:
            files = self._package_files(head) if head.is_package else (head.inside(head.rel),)
            if head.is_package:
                files = self._with_imported_ignored(head, files)
            if files:
                units.append(Unit(head.name, self.root / head.prefix, files))
            else:
                logger.debug("%s left out: none of its files ship", head.rel)
        self._known_packages = frozenset(head.rel for head in heads if head.is_package)
        if self._declared is not None:  # the build lists what it ships: that wins
            kept = [u for u in units if u.name in self._declared or self._rules.includes(u.name)]
            for unit in set(units) - set(kept):
                logger.info("%s left out: the build does not ship it", unit.name)
            units = kept
        return units

    def _with_imported_ignored(self, head: _Head, files: tuple[str, ...]) -> tuple[str, ...]:
        """``files``, and the .py files only .gitignore left out that the package's code
        imports (a generated ``_version.py``): without them it cannot be imported."""
        ignored = sorted(r for r in self._rules.git_ignored_modules if r.startswith(head.rel + "/"))
        if not ignored:
            return files
        sources = {
            f: (self.root / head.prefix / f).read_bytes() for f in files if f.endswith(".py")
        }
        written, added = version_files(self._pyproject), []
        for rel in ignored:
            module = rel.rpartition("/")[2][:-3]
            importer = next((f for f, src in sources.items() if imports_module(src, module)), None)
            if importer is not None or rel in written:
                added.append(head.inside(rel))
                why = f"{importer} imports it" if importer else "the build writes it into the wheel"
                self.readmitted[self.root / rel] = f".gitignore lists it; {why}"
        return tuple(sorted((*files, *added)))

    def _package_files(self, head: _Head) -> tuple[str, ...]:
        files, folders = [], [head.rel]
        while folders:
            folder = folders.pop()
            for entry in scandir(self.root / folder):
                rel = f"{folder}/{entry.name}"
                # Symlinked folders are not followed (git does not either): they could loop.
                if entry.is_dir(follow_symlinks=False):
                    if self._rules.enters(rel):
                        folders.append(rel)
                elif self._rules.ships(rel) and shippable(entry, rel, self.root, is_secret):
                    files.append(head.inside(rel))
        return tuple(sorted(files))

    def _is_module(self, rel: str) -> bool:
        name = rel.rpartition("/")[2]
        return name.endswith(".py") and _importable(name[:-3]) and self._rules.ships(rel)

    def _is_package(self, rel: str) -> bool:
        return (
            _importable(rel.rpartition("/")[2])
            and self._rules.enters(rel)
            and (
                os.path.isfile(self.root / rel / "__init__.py")
                or rel in self._named_packages
                or self._rules.includes(rel + "/")
                or is_namespace(self.root / rel, rel in self._prefixes, self._rules.enters, rel)
            )
        )


@dataclass(frozen=True)
class _Head:
    """Where a unit starts, before its files are walked. Paths are project-relative POSIX."""

    name: str
    prefix: str  # its source root ("" for the project root)
    rel: str
    is_package: bool

    def inside(self, rel: str) -> str:
        """``rel`` relative to the source root instead of the project root."""
        return rel[len(self.prefix) + 1 :] if self.prefix else rel


class Sibling:
    """An editable install whose code the project imports; its own Project, read on first use."""

    def __init__(
        self,
        install: EditableInstall,
        imports_of: Callable[[Iterable[Unit]], frozenset[str]] | None = None,
    ) -> None:
        self.install = install
        self.distribution = install.distribution
        self._imports_of = imports_of
        self._project: Project | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            try:
                config = load_config(self.install.folder)
            except ConfigError as e:
                where = f"editable install {self.distribution} at {self.install.folder}"
                raise ConfigError(f"{where}: {e}", tip=e.tip) from None
            self._project = Project(config, find_editable=False, imports_of=self._imports_of)
        return self._project

    def provides(self, name: str) -> bool:
        return name in self.install.names if self.install.names else True

    def unit_heads(self) -> set[str]:
        return {head.name for head in self.project._unit_heads()}

    def units(self) -> list[Unit]:
        """Its own units that the distribution installs, marked with their origin."""
        origin = f"editable:{self.distribution}"
        units = [u for u in self.project._own_units() if self.provides(u.name)]
        units = self.project._with_metadata(units, self.distribution)
        return [replace(unit, origin=origin) for unit in units]

    def unit_name_for(self, absolute: str) -> str | None:
        name = self.project._own_unit_name_for(absolute)
        return name if name is not None and self.provides(name) else None


def _imported_names(units: Iterable[Unit]) -> frozenset[str]:
    return imported_names(unit.root / f for unit in units for f in unit.files if f.endswith(".py"))


def _unique(units: list[Unit]) -> list[Unit]:
    by_name: dict[str, list[Unit]] = {}
    for unit in units:
        by_name.setdefault(unit.name, []).append(unit)
    clashes = {name: same for name, same in sorted(by_name.items()) if len(same) > 1}
    if clashes:
        where = "; ".join(
            f"{name!r} in " + " and ".join(str(u.root / u.files[0].partition("/")[0]) for u in same)
            for name, same in clashes.items()
        )
        raise UsageError(
            f"two units share a name: {where}",
            tip="rename one, or leave one out with [tool.shipit] exclude in pyproject.toml",
        )
    return sorted(units, key=attrgetter("name"))


def _importable(name: str) -> bool:
    # Dunder names (__init__.py, __main__.py at a source root) would shadow the interpreter's.
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__")
