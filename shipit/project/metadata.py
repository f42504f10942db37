"""The project's own distribution metadata, shipped beside its units: on every node
``importlib.metadata.version(project)``, ``.metadata()`` and its entry points give what the
client's source says, as they would after ``pip install`` of it.

Taken from the client's editable install of the project when there is one (its backend
computed the version, setuptools-scm's included), else written from ``[project]`` in
pyproject.toml when its name and version are static. The files form a
``<name>-<version>.dist-info`` folder carried by one of the project's units; nodes find it
before any installed copy of the project.
"""

from __future__ import annotations

import configparser
import logging
from collections.abc import Iterable, Mapping
from importlib.metadata import Distribution
from importlib.metadata import distributions as installed_distributions
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from .siblings import editable_folder

logger = logging.getLogger(__name__)

_COPIED = ("METADATA", "entry_points.txt")  # what importlib.metadata reads of a distribution


def dist_info(
    root: Path,
    pyproject: Mapping[str, Any],
    distributions: Iterable[Distribution] | None = None,
    name: str | None = None,
) -> dict[str, bytes]:
    """The metadata files of the project at ``root`` (or of distribution ``name``), by their
    path in a version folder; empty when neither an install nor pyproject.toml says.

    >>> sorted(dist_info(Path("."), {"project": {"name": "My-Lib", "version": "1.2"}}, []))
    ['my_lib-1.2.dist-info/INSTALLER', 'my_lib-1.2.dist-info/METADATA']
    """
    installed = _installed(root, distributions, name)
    meta_name: Any
    version: Any
    if installed is not None:
        files = {f: text.encode() for f in _COPIED if (text := installed.read_text(f))}
        meta_name, version = installed.metadata["Name"], installed.version
    else:
        table = pyproject.get("project", {}) or _setup_cfg_metadata(root / "setup.cfg")
        meta_name, version = table.get("name"), table.get("version")
        if not isinstance(meta_name, str) or not isinstance(version, str):
            if isinstance(meta_name, str):
                logger.info(
                    "no metadata shipped for %s: its version is dynamic and it is not "
                    "installed here (pip install -e . gives it one)",
                    meta_name,
                )
            return {}
        files = _from_pyproject(table, meta_name, version)
    if not meta_name or not version or "METADATA" not in files:
        return {}
    folder = f"{canonicalize_name(meta_name).replace('-', '_')}-{version}.dist-info"
    files["INSTALLER"] = b"shipit\n"
    return {f"{folder}/{f}": data for f, data in sorted(files.items())}


def carrier(units_names: Iterable[str], distribution: str) -> str | None:
    """Which unit carries the metadata: the one named like the distribution, else the first.

    >>> carrier(["attr", "attrs"], "attrs"), carrier(["_pytest", "pytest", "py"], "pytest")
    ('attrs', 'pytest')
    """
    names = sorted(units_names)
    wanted = canonicalize_name(distribution).replace("-", "_")
    return wanted if wanted in names else (names[0] if names else None)


def installed_from(root: Path) -> Distribution | None:
    """The distribution installed here in editable mode from the project at ``root``."""
    return _installed(root, None, None)


def _installed(
    root: Path, distributions: Iterable[Distribution] | None, name: str | None
) -> Distribution | None:
    for dist in installed_distributions() if distributions is None else distributions:
        dist_name = dist.metadata["Name"]
        if dist_name is None:
            continue
        if name is not None:
            if canonicalize_name(dist_name) == canonicalize_name(name):
                return dist
        elif editable_folder(dist) == root:
            return dist
    return None


def _setup_cfg_metadata(path: Path) -> dict[str, Any]:
    """``[metadata]`` of a declarative setuptools project, as a ``[project]`` table: its
    name, a literal version, its summary and ``install_requires``."""
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return {}
    version = parser.get("metadata", "version", fallback="")
    table: dict[str, Any] = {
        "name": parser.get("metadata", "name", fallback=None),
        "description": parser.get("metadata", "description", fallback=None),
        "dependencies": parser.get("options", "install_requires", fallback="").split("\n"),
    }
    if version and not version.startswith(("attr:", "file:")):
        table["version"] = version
    table["dependencies"] = [d.strip() for d in table["dependencies"] if d.strip()]
    return {k: v for k, v in table.items() if v is not None}


def _from_pyproject(table: Mapping[str, Any], name: str, version: str) -> dict[str, bytes]:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if isinstance(summary := table.get("description"), str):
        lines.append(f"Summary: {summary.splitlines()[0] if summary else ''}")
    if isinstance(requires := table.get("requires-python"), str):
        lines.append(f"Requires-Python: {requires}")
    lines += [f"Requires-Dist: {d}" for d in table.get("dependencies", ()) if isinstance(d, str)]
    for extra, deps in sorted((table.get("optional-dependencies") or {}).items()):
        lines.append(f"Provides-Extra: {extra}")
        for dep in deps if isinstance(deps, list) else ():
            requirement, _, condition = dep.partition(";")
            marker = f'extra == "{extra}"'
            marker = f"({condition.strip()}) and {marker}" if condition.strip() else marker
            lines.append(f"Requires-Dist: {requirement.strip()}; {marker}")
    files = {"METADATA": ("\n".join(lines) + "\n").encode()}
    groups = dict(table.get("entry-points") or {})
    for key, group in (("scripts", "console_scripts"), ("gui-scripts", "gui_scripts")):
        if table.get(key):
            groups[group] = table[key]
    if groups:
        text = "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(entries.items())) + "\n"
            for group, entries in sorted(groups.items())
            if isinstance(entries, dict)
        )
        files["entry_points.txt"] = text.encode()
    return files
