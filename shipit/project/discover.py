"""Find what to ship from a project folder: its modules and packages, and which of their files.

Everything is decided from names on disk, pyproject.toml and .gitignore files; the user's code
is never imported or run. One set of rules serves both the full walk (``Project.units``) and the
per-file question a watcher asks (``Project.unit_name_for``), so the two always agree.
"""

from __future__ import annotations

import keyword
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import Distribution
from operator import attrgetter
from pathlib import Path

from pathspec import GitIgnoreSpec

from ..config import Config
from ..errors import BadFile, UsageError
from .entries import shippable
from .layout import layout
from .siblings import Sibling, imported_siblings

logger = logging.getLogger(__name__)

# fmt: off
# Never shipped, whatever .gitignore or [tool.shipit] include says.
SECRET_PATTERNS = (
    ".env*", "*.pem", "*.key", "*.crt", "*.cer", "*.p12", "*.pfx", "*.jks", "*.keystore",
    "*.p8", "*.ppk", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    ".netrc", ".pypirc", ".pgpass", ".git-credentials", ".git/",
    "credentials", "credentials.json", "credentials.db", "access_tokens.db", "accessTokens.json",
    "*service-account*.json", "application_default_credentials.json",
    ".ssh/", ".aws/", ".gcloud/", "gcloud/", ".azure/", ".kube/", ".docker/", ".gnupg/",
)
# Left out by name at any depth, unless include names them. Hidden names (".*") cover .git,
# .venv, .tox, .nox, .eggs, .mypy_cache, .pytest_cache, .ruff_cache and ".#" editor locks.
JUNK_PATTERNS = (
    ".*", "__pycache__/", "*.py[co]", "node_modules/", "dask-scratch-space/",
    "*.swp", "*.swo", "*~", "\\#*#", "*.egg-info/", "*.dist-info/",
    "test_*.py", "*_test.py", "conftest.py",
)
# build/, dist/, env/ are build output or environments only where tools put them; deeper down
# a folder of that name is more likely a real subpackage (mytool/build/, agent/env/).
_AT_PROJECT_ROOT = ("build/", "dist/", "examples/", "benchmarks/")
_AT_SOURCE_ROOT = (
    "tests/", "test/", "testing/", "docs/", "doc/", "venv/", "env/",
    "setup.py", "noxfile.py", "fabfile.py",
)
# fmt: on
_SECRETS = GitIgnoreSpec.from_lines(SECRET_PATTERNS)
_JUNK = GitIgnoreSpec.from_lines(JUNK_PATTERNS)


@dataclass(frozen=True)
class Unit:
    """One importable top-level module or package, and the files that make it up."""

    name: str  # import name: "pkg" for a package folder, "mod" for mod.py
    root: Path  # absolute source root that holds it (the folder that must be on sys.path)
    files: tuple[str, ...]  # sorted POSIX paths relative to root
    origin: str = "project"  # or "editable:<distribution name>"


def discover(config: Config) -> list[Unit]:
    """The units to ship, sorted by name, editable siblings the code imports included.

    >>> [(u.name, u.files) for u in discover(load_config("examples/montecarlo"))]
    [('montecarlo', ('montecarlo/__init__.py', 'montecarlo/sim.py'))]
    """
    return Project(config).units()


def editable_units(
    config: Config, distributions: Iterable[Distribution] | None = None
) -> list[Unit]:
    """Units of other projects installed in editable mode that the project's code imports.

    ``distributions`` defaults to those of the running environment.

    >>> [(u.name, u.origin) for u in editable_units(load_config("."))]
    [('mylib', 'editable:mylib')]
    """
    siblings = Project(config, distributions=distributions)._editable_siblings()
    return sorted((unit for s in siblings for unit in s.units()), key=attrgetter("name"))


class Project:
    """The units of one project folder, and a fast answer to "would this file ship, and where?".

    Folder verdicts and .gitignore files are cached: call ``reload_ignores()`` when a
    .gitignore changes, and build a new ``Project`` when pyproject.toml does.

    >>> project = Project(load_config("."))
    >>> project.unit_name_for("src/pkg/sub.py"), project.unit_name_for("tests/test_sub.py")
    ('pkg', None)
    """

    def __init__(
        self,
        config: Config,
        *,
        distributions: Iterable[Distribution] | None = None,
        find_editable: bool = True,
    ) -> None:
        self.root = config.root.resolve()
        self._prefixes, self._named_packages = layout(self.root, config.pyproject)
        self.source_roots = tuple(self.root / prefix for prefix in self._prefixes)
        # Deepest first, so src/pkg/x.py is looked up in src/ before the project root.
        self._folders_deepest_first = sorted(
            ((str(self.root / prefix), prefix) for prefix in self._prefixes),
            key=lambda pair: -len(pair[1]),
        )
        self._rules = _Rules(self.root, config, self._prefixes)
        self._distributions = distributions
        self._find_editable = find_editable
        self._siblings: tuple[Sibling, ...] | None = None
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
        return _outermost(roots)

    def units(self) -> list[Unit]:
        """Walk the source roots now: this project's units and its editable siblings', by name."""
        own = self._own_units()
        siblings = [unit for s in self._editable_siblings(own) for unit in s.units()]
        return _unique(own + siblings)

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

    def _editable_siblings(self, own_units: list[Unit] | None = None) -> tuple[Sibling, ...]:
        # Found once per Project: the set changes only when imports or installs change.
        if self._siblings is None:
            if not self._find_editable:
                self._siblings = ()
            else:
                units = self._own_units() if own_units is None else own_units
                self._siblings = imported_siblings(self.root, units, self._distributions)
        return self._siblings

    def _own_unit_name_for(self, absolute: str) -> str | None:
        for folder, prefix in self._folders_deepest_first:
            if not absolute.startswith(folder + os.sep):
                continue
            top, _, rest = absolute[len(folder) + 1 :].replace(os.sep, "/").partition("/")
            head = _join(prefix, top)
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
            for entry in _scandir(self.root / prefix):
                rel = _join(prefix, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    if self._is_package(rel):
                        heads.append(_Head(entry.name, prefix, rel, is_package=True))
                elif self._is_module(rel) and shippable(entry, rel, self.root, _is_secret):
                    heads.append(_Head(entry.name[:-3], prefix, rel, is_package=False))
        return heads

    def _own_units(self) -> list[Unit]:
        units = []
        heads = self._unit_heads()
        for head in heads:
            files = self._package_files(head) if head.is_package else (head.inside(head.rel),)
            if files:
                units.append(Unit(head.name, self.root / head.prefix, files))
            else:
                logger.debug("%s left out: none of its files ship", head.rel)
        self._known_packages = frozenset(head.rel for head in heads if head.is_package)
        return units

    def _package_files(self, head: _Head) -> tuple[str, ...]:
        files, folders = [], [head.rel]
        while folders:
            folder = folders.pop()
            for entry in _scandir(self.root / folder):
                rel = f"{folder}/{entry.name}"
                # Symlinked folders are not followed (git does not either): they could loop.
                if entry.is_dir(follow_symlinks=False):
                    if self._rules.enters(rel):
                        folders.append(rel)
                elif self._rules.ships(rel) and shippable(entry, rel, self.root, _is_secret):
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


class _Rules:
    """Path by path (POSIX, project-relative): does the walk enter this folder, ship this file?

    The walk only asks about paths whose folders it entered. Folder verdicts and .gitignore
    files are cached, so a question costs a few dictionary look-ups and pattern matches.
    """

    def __init__(self, root: Path, config: Config, prefixes: Iterable[str]) -> None:
        self._root = root
        self._include = GitIgnoreSpec.from_lines(config.include)
        self._exclude = GitIgnoreSpec.from_lines(config.exclude)
        self._include_parents = _literal_parents(config.include)
        self._layout = GitIgnoreSpec.from_lines(_layout_lines(prefixes))
        self._reported_secrets: set[str] = set()
        self.reload()

    def reload(self) -> None:
        self._gitignores: dict[str, GitIgnoreSpec | None] = {}
        # True: entered; None: entered only to reach what an include pattern names below it.
        self._folders: dict[str, bool | None] = {}
        self._info_exclude = _read_ignore_file(self._root / ".git" / "info" / "exclude")

    def enters(self, folder: str) -> bool:
        """Whether the walk reaches this folder and goes into it ("" is the project root)."""
        return not folder or self._folder_verdict(folder) is not False

    def ships(self, file: str) -> bool:
        """Whether this file ships (if it is in a unit): its folders are entered, it is not
        left out, and it is not a secret."""
        if not self.enters(file.rpartition("/")[0]):
            return False
        if _SECRETS.match_file(file):
            if file not in self._reported_secrets:
                self._reported_secrets.add(file)
                logger.info("not shipping %s: it looks like a secret", file)
            return False
        return self._verdict(file, is_dir=False) is True

    def includes(self, key: str) -> bool:
        return self._include.match_file(key)

    def _folder_verdict(self, folder: str) -> bool | None:
        if folder not in self._folders:
            self._folders[folder] = self._verdict(folder, is_dir=True)
        return self._folders[folder]

    def _verdict(self, rel: str, *, is_dir: bool) -> bool | None:
        key = rel + "/" if is_dir else rel
        parent = rel.rpartition("/")[0]
        # Asking about the folder first makes any path answer like the walk that reaches it.
        folder_verdict = self._folder_verdict(parent) if parent else True
        if folder_verdict is False or _SECRETS.match_file(key) or self._exclude.match_file(key):
            return False
        if _own_match(self._include, key, parent):
            return True
        if folder_verdict is None or self._ignored(rel, key, parent, is_dir=is_dir):
            return None if is_dir and rel in self._include_parents else False
        return True

    def _ignored(self, rel: str, key: str, parent: str, *, is_dir: bool) -> bool:
        # Junk patterns are about a name, so match the name alone: a folder that include
        # re-admitted (".config/") must not pass its verdict on to everything inside it.
        name = rel.rpartition("/")[2] + ("/" if is_dir else "")
        if _JUNK.match_file(name) or _own_match(self._layout, key, parent):
            return True
        if is_dir and os.path.isfile(self._root / rel / "pyvenv.cfg"):
            return True
        # Git's precedence: .git/info/exclude, then each .gitignore from the root down; the
        # deepest with a matching pattern decides, and a negation ("!x") re-admits.
        verdict = _own_match(self._info_exclude, key, parent)
        parts = rel.split("/")
        for depth in range(len(parts)):
            folder = "/".join(parts[:depth])
            spec = self._gitignore_in(folder)
            if spec is not None:
                local_parent = parent[len(folder) + 1 :] if folder else parent
                matched = _own_match(spec, key[len(folder) + 1 :] if folder else key, local_parent)
                verdict = verdict if matched is None else matched
        return bool(verdict)

    def _gitignore_in(self, folder: str) -> GitIgnoreSpec | None:
        if folder not in self._gitignores:
            path = self._root / folder / ".gitignore"
            self._gitignores[folder] = _read_ignore_file(path) if os.path.isfile(path) else None
        return self._gitignores[folder]


def _is_secret(rel: str) -> bool:
    return _SECRETS.match_file(rel)


def _own_match(spec: GitIgnoreSpec, key: str, parent: str) -> bool | None:
    """The spec's verdict on ``key``, or None when it only repeats its verdict on the folder.

    pathspec applies a folder pattern ("gen/") to everything below the folder. The walk has
    already judged the folder; if include re-admitted it, its files must be judged on their own.
    """
    result = spec.check_file(key)
    if result.include and parent and spec.check_file(parent + "/").index == result.index:
        return None
    return result.include


def _layout_lines(prefixes: Iterable[str]) -> list[str]:
    lines = [f"/{pattern}" for pattern in _AT_PROJECT_ROOT]
    for prefix in prefixes:
        lines += [f"/{_join(_escape(prefix), pattern)}" for pattern in _AT_SOURCE_ROOT]
    return lines


def _literal_parents(patterns: Iterable[str]) -> frozenset[str]:
    """Folders to enter to reach what include names: "src/gen/x.py" -> {"src", "src/gen"}.

    Only a pattern with a slash names a place: "_version.py" re-admits such files wherever the
    walk goes, but does not make it enter ignored folders such as .venv to look for them.
    """
    parents: set[str] = set()
    for pattern in patterns:
        parts = pattern.strip("/").split("/")
        if pattern.startswith(("!", "#")):
            continue
        for depth in range(1, len(parts)):
            if set("*?[\\") & set(parts[depth - 1]):
                break
            parents.add("/".join(parts[:depth]))
    return frozenset(parents)


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


def _outermost(folders: Iterable[Path]) -> tuple[Path, ...]:
    kept: list[Path] = []
    for folder in sorted(set(folders), key=lambda f: len(f.parts)):
        if not any(folder.is_relative_to(outer) for outer in kept):
            kept.append(folder)
    return tuple(kept)


def _read_ignore_file(path: Path) -> GitIgnoreSpec:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    return GitIgnoreSpec.from_lines(lines)


def _scandir(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except FileNotFoundError as e:  # vanished mid-walk: not part of this snapshot
        logger.debug("cannot list %s: %s", folder, e)
        return []
    except OSError as e:  # a folder of the project left out in silence would surprise
        raise BadFile(folder, e.strerror or str(e)) from None


def _importable(name: str) -> bool:
    # Dunder names (__init__.py, __main__.py at a source root) would shadow the interpreter's.
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix and name else prefix or name


def _escape(folder: str) -> str:
    return "".join(f"\\{c}" if c in "\\[]!*#?" else c for c in folder)
