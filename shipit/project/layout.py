"""Where a project keeps its code, as pyproject.toml declares it: source roots and package folders.

Only the setuptools, hatch and poetry tables are read; folders named there that do not exist
inside the project are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

logger = logging.getLogger(__name__)


def layout(root: Path, pyproject: Mapping[str, Any]) -> tuple[tuple[str, ...], frozenset[str]]:
    """Existing source roots and named package folders, project-relative ("" is the root)."""
    declared_roots, declared_packages = _declared_layout(pyproject)
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
