"""Where a project keeps its code, as pyproject.toml declares it: source roots and package folders.

The setuptools, hatch and poetry tables are read, and setup.cfg's source folders; folders
named there that do not exist inside the project are skipped.
"""

from __future__ import annotations

import configparser
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

logger = logging.getLogger(__name__)


def layout(root: Path, pyproject: Mapping[str, Any]) -> tuple[tuple[str, ...], frozenset[str]]:
    """Existing source roots and named package folders, project-relative ("" is the root)."""
    declared_roots, declared_packages = _declared_layout(pyproject)
    declared_roots += _setup_cfg_roots(root / "setup.cfg")
    found = (_existing_folder(root, folder) for folder in declared_packages)
    packages = frozenset(folder for folder in found if folder is not None)
    parents = (folder.rpartition("/")[0] or "." for folder in packages)
    roots = (_existing_folder(root, f) for f in [".", "src", *declared_roots, *parents])
    return tuple(dict.fromkeys(folder for folder in roots if folder is not None)), packages


def _declared_layout(pyproject: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Source folders and package folders that pyproject.toml names, as written there."""
    tool = _table(pyproject, "tool")
    setuptools = _table(tool, "setuptools")
    package_dir = {k: v for k, v in _table(setuptools, "package-dir").items() if isinstance(v, str)}
    base = package_dir.get("", ".")
    roots, packages = [base], []
    listed = setuptools.get("packages")  # a list of names, or {find = {where = [...]}}
    roots += _strings(_table(listed, "find").get("where"))
    for name in _strings(listed) + [name for name in package_dir if name]:
        folder = package_dir.get(name, f"{base}/{name}")
        # A subpackage lives inside its top-level package; a folder named unlike its package
        # (package-dir = {"foo" = "lib/bar"}) cannot be shipped under that name.
        if "." not in name and PurePosixPath(folder).name == name:
            packages.append(folder)
    hatch_build = _table(_table(tool, "hatch"), "build")
    for table in (hatch_build, _table(_table(hatch_build, "targets"), "wheel")):
        packages += _strings(table.get("packages"))
    for entry in _table(tool, "poetry").get("packages") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("include"), str):
            source, include = str(entry.get("from", ".")), entry["include"]
            roots.append(source)
            if not include.endswith(".py") and not set("*?[") & set(include):
                packages.append(f"{source}/{include}")
    return roots, packages


def declared_units(pyproject: Mapping[str, Any]) -> frozenset[str] | None:
    """The top-level names the build ships, when it lists them and nothing else: flit's one
    module, setuptools' ``packages`` list and ``py-modules``, hatch's and poetry's
    ``packages``. None when the build finds its packages itself (``find``, the defaults).

    >>> sorted(declared_units({"build-system": {"build-backend": "flit_core.buildapi"},
    ...                        "project": {"name": "typing-extensions"}}))
    ['typing_extensions']
    """
    tool = _table(pyproject, "tool")
    backend = _table(pyproject, "build-system").get("build-backend")
    if isinstance(backend, str) and backend.startswith("flit_core"):
        module = _table(_table(tool, "flit"), "module").get("name")
        name = module if isinstance(module, str) else _table(pyproject, "project").get("name")
        return frozenset([name.replace("-", "_").split(".")[0]]) if isinstance(name, str) else None
    setuptools = _table(tool, "setuptools")
    listed = setuptools.get("packages")
    if isinstance(listed, list) or isinstance(setuptools.get("py-modules"), list):
        names = _strings(listed) + _strings(setuptools.get("py-modules"))
        return frozenset(n.split(".")[0] for n in names)
    hatch_build = _table(_table(tool, "hatch"), "build")
    hatch = _strings(_table(_table(hatch_build, "targets"), "wheel").get("packages"))
    hatch += _strings(hatch_build.get("packages"))
    poetry = [e.get("include") for e in _table(tool, "poetry").get("packages") or []
              if isinstance(e, Mapping)]  # fmt: skip
    named = hatch + [p for p in poetry if isinstance(p, str)]
    if not named or any(set("*?[") & set(p) for p in named):
        return None
    return frozenset(PurePosixPath(p).name.removesuffix(".py") for p in named)


def _setup_cfg_roots(path: Path) -> list[str]:
    """Source folders ``setup.cfg`` names: ``[options] package_dir = =lib`` and
    ``[options.packages.find] where``."""
    if not path.is_file():
        return []
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as e:
        logger.debug("cannot read %s: %s", path, e)
        return []
    roots = []
    for line in parser.get("options", "package_dir", fallback="").splitlines():
        package, _, folder = line.partition("=")
        if not package.strip() and folder.strip():
            roots.append(folder.strip())
    roots += parser.get("options.packages.find", "where", fallback="").split()
    return roots


def _existing_folder(root: Path, declared: str) -> str | None:
    folder = (root / declared).resolve()
    if folder.is_dir() and folder.is_relative_to(root):
        relative = folder.relative_to(root).as_posix()
        return "" if relative == "." else relative
    logger.debug("pyproject.toml names %r, which is not a folder inside %s", declared, root)
    return None


def _table(table: object, key: str) -> Mapping[str, Any]:
    value = table.get(key) if isinstance(table, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def version_files(pyproject: Mapping[str, Any]) -> frozenset[str]:
    """The version files a build backend writes into the package (project-relative POSIX):
    setuptools-scm's ``version_file`` / ``write_to``, hatch-vcs's ``version-file``, PDM's
    ``write_to``. Git ignores them; the wheel holds them.

    >>> sorted(version_files({"tool": {"hatch": {"build": {"hooks": {"vcs": {
    ...     "version-file": "src/pkg/_version.py"}}}}}}))
    ['src/pkg/_version.py']
    """
    tool = pyproject.get("tool", {})
    found = [
        _get(tool, "setuptools_scm", "version_file"), _get(tool, "setuptools_scm", "write_to"),
        _get(tool, "hatch", "build", "hooks", "vcs", "version-file"),
        _get(tool, "hatch", "build", "targets", "wheel", "hooks", "vcs", "version-file"),
        _get(tool, "pdm", "version", "write_to"),
    ]  # fmt: skip
    return frozenset(f.strip("/").replace("\\", "/") for f in found if isinstance(f, str) and f)


def _get(table: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(table, Mapping):
            return None
        table = table.get(key)
    return table


def is_namespace(
    folder: Path, is_source_root: bool, enters: Callable[[str], bool], rel: str
) -> bool:
    """Whether ``folder`` (``rel`` in the project) is a PEP 420 namespace package, as
    ``google/`` of google-auth: not a source root or a project of its own, no module of its
    own, and a package inside that the walk enters."""
    if is_source_root:
        return False
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return False
    names = {e.name for e in entries}
    if names & {"pyproject.toml", "setup.py", "setup.cfg"} or any(n.endswith(".py") for n in names):
        return False
    return any(
        e.is_dir(follow_symlinks=False) and os.path.isfile(os.path.join(e.path, "__init__.py"))
        and enters(f"{rel}/{e.name}")
        for e in entries
    )  # fmt: skip


_NOT_CODE = frozenset(("tests", "test", "testing", "docs", "doc", "examples", "benchmarks",
                       "build", "dist", "venv", "env"))  # fmt: skip


def nothing_found_tip(root: Path, source_roots: Sequence[Path]) -> str | None:
    """The fix for a project where discovery found nothing, by what its layout shows: a
    folder of modules without ``__init__.py``, or packages only setup.py names."""
    for source in source_roots:
        try:
            folders = sorted(
                (e for e in os.scandir(source) if e.is_dir(follow_symlinks=False)),
                key=lambda e: e.name,
            )
        except OSError:
            continue
        for entry in folders:
            if entry.name in _NOT_CODE or not entry.name.isidentifier() or entry.name[0] == "_":
                continue
            try:
                has_modules = any(n.endswith(".py") for n in os.listdir(entry.path))
            except OSError:
                continue
            if has_modules:
                rel = Path(entry.path).relative_to(root).as_posix()
                return (
                    f"{rel}/ holds modules but no __init__.py: add one, or ship it as a "
                    f'package with [tool.shipit] include = ["{rel}/"]'
                )
    if (root / "setup.py").is_file():
        return (
            "setup.py may name the package folders, which shipit does not read (it never runs "
            'setup.py): name them with [tool.shipit] include = ["lib/mypkg/"]'
        )
    return None
