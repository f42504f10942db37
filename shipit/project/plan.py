"""What a sync ships, decided without connecting anywhere: units found, packed, size-checked.

The plan of a sync is made once and handed on: the push takes its packs, the install and
the parity check its units, its config and the names its code imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config, load_config
from ..errors import NothingToShip
from ..report import SyntaxProblem
from .discover import Project, Unit
from .limits import check_sizes
from .pack import Pack, Packer


@dataclass(frozen=True)
class Plan:
    """What a sync of this project would ship: the packs that compile and the problems."""

    config: Config
    packs: tuple[Pack, ...]
    problems: tuple[SyntaxProblem, ...]
    units: tuple[Unit, ...]


def plan(path: str | Path = ".", packer: Packer | None = None) -> Plan:
    """Discover and pack the project at ``path``, without connecting anywhere.

    >>> [p.name for p in plan("examples/montecarlo").packs]
    ['montecarlo']
    """
    config = load_config(path)
    project = Project(config)
    units = project.units()
    if not units:
        raise NothingToShip(config.root, [_where(project.root, r) for r in project.source_roots])
    packs, problems = (packer or Packer()).pack(units)
    check_sizes(packs, config)
    return Plan(config=config, packs=tuple(packs), problems=tuple(problems), units=tuple(units))


def _where(root: Path, folder: Path) -> str:
    relative = folder.relative_to(root).as_posix()
    return "its top folder" if relative == "." else f"{relative}/"
