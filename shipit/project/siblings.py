"""Other projects installed with ``pip install -e`` whose code the project imports ("siblings").

They ship with the project, found through each install's ``direct_url.json`` (PEP 610) and the
names the code imports; a sibling's own imports are followed in turn.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from importlib.metadata import Distribution
from importlib.metadata import distributions as installed_distributions
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse
from urllib.request import url2pathname

from packaging.utils import canonicalize_name

from ..config import load_config
from ..errors import ConfigError
from .imports import imported_names, top_level_names

if TYPE_CHECKING:
    from .discover import Project, Unit

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Sibling:
    """Another project installed with ``pip install -e``, whose code the project imports."""

    distribution: str
    project: Project
    # Top-level names the distribution installs; empty when its metadata does not say (a .pth
    # editable install puts the whole folder on sys.path, so every unit in it is importable).
    names: frozenset[str]

    def provides(self, name: str) -> bool:
        return name in self.names if self.names else True

    def units(self) -> list[Unit]:
        """Its own units that the distribution installs, marked with their origin."""
        origin = f"editable:{self.distribution}"
        units = self.project._own_units()
        return [replace(unit, origin=origin) for unit in units if self.provides(unit.name)]

    def unit_name_for(self, absolute: str) -> str | None:
        name = self.project._own_unit_name_for(absolute)
        return name if name is not None and self.provides(name) else None


def imported_siblings(
    root: Path, units: list[Unit], distributions: Iterable[Distribution] | None
) -> tuple[Sibling, ...]:
    """The editable installs that ``units`` import, directly or through one another."""
    by_name: dict[str, list[Sibling]] = {}
    for sibling in _editable_installs(root, distributions):
        names = sibling.names or {head.name for head in sibling.project._unit_heads()}
        for name in names:
            by_name.setdefault(name, []).append(sibling)
    seen = {unit.name for unit in units} | set(sys.stdlib_module_names)
    wanted = set(imported_names(_python_files(units))) - seen
    found: dict[str, Sibling] = {}
    while wanted:
        name = min(wanted)  # not pop(): the same order, and the same log, on every run
        wanted.discard(name)
        seen.add(name)
        for sibling in by_name.get(name, ()):
            if sibling.distribution not in found:
                logger.info("shipping editable %s: the code imports %s", sibling.distribution, name)
                found[sibling.distribution] = sibling
                sibling_units = sibling.units()
                seen |= {unit.name for unit in sibling_units}
                wanted |= imported_names(_python_files(sibling_units)) - seen
    return tuple(found.values())


def _editable_installs(
    root: Path, distributions: Iterable[Distribution] | None
) -> Iterator[Sibling]:
    seen: set[str] = set()
    for dist in installed_distributions() if distributions is None else distributions:
        name = dist.metadata["Name"]
        # Of several copies on sys.path, the first is the one Python imports.
        if name is None or canonicalize_name(name) in seen:
            continue
        seen.add(canonicalize_name(name))
        folder = _editable_folder(dist)
        if folder is None or folder == root or not folder.is_dir():
            continue
        from .discover import Project  # here, not at the top: discover.py imports this module

        try:
            config = load_config(folder)
        except ConfigError as e:
            raise ConfigError(f"editable install {name} at {folder}: {e}", tip=e.tip) from None
        yield Sibling(name, Project(config, find_editable=False), top_level_names(dist))


def _editable_folder(dist: Distribution) -> Path | None:
    """The project folder of an editable install, from its ``direct_url.json`` (PEP 610)."""
    try:
        info = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        return None
    if not isinstance(info, dict) or not isinstance(info.get("dir_info"), dict):
        return None
    url = urlparse(str(info.get("url", "")))
    if info["dir_info"].get("editable") is not True or url.scheme != "file":
        return None
    return Path(url2pathname(url.path)).resolve()


def _python_files(units: Iterable[Unit]) -> Iterator[Path]:
    return (unit.root / file for unit in units for file in unit.files if file.endswith(".py"))
