"""What a sync ships, decided without connecting anywhere: units found, packed, size-checked.

The plan of a sync is made once and handed on: the push takes its packs, the install and
the parity check its units, its config and the names its code imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config, load_config
from ..errors import NothingToShip
from ..report import SyntaxProblem
from .discover import Project, Unit
from .layout import nothing_found_tip
from .limits import check_compiled, check_sizes
from .pack import Pack, Packer


@dataclass(frozen=True)
class Plan:
    """What a sync of this project would ship: the packs that compile and the problems.

    ``imports`` are the top-level names the units' code imports, read with the files; None
    when unknown (the parity check then reads the files for them).
    """

    config: Config
    packs: tuple[Pack, ...]
    problems: tuple[SyntaxProblem, ...]
    units: tuple[Unit, ...]
    imports: frozenset[str] | None = None
    # Files inside the units that never ship, and why: a secret's name, a private key inside.
    held_back: tuple[tuple[Path, str], ...] = ()
    # Files shipped though .gitignore lists them, and why: the code imports them.
    readmitted: tuple[tuple[Path, str], ...] = ()
    # Modules whose imports their text cannot tell: nodes reload them with any change in
    # their unit, and so every module that imports them.
    computed_imports: tuple[str, ...] = ()
    # Of ``imports``, those only ever imported where a failed import is caught: optional.
    optional_imports: frozenset[str] = frozenset()


def plan(path: str | Path = ".", packer: Packer | None = None) -> Plan:
    """Discover and pack the project at ``path``, without connecting anywhere.

    >>> [p.name for p in plan("examples/montecarlo").packs]
    ['montecarlo']
    """
    return plan_of(load_config(path), packer)


def plan_of(config: Config, packer: Packer | None = None) -> Plan:
    """:func:`plan` of a project whose ``[tool.shipit]`` is already read: one walk of the
    tree, and one read of each file for its digest, its syntax check and its imports."""
    packer = packer or Packer()
    project = Project(config, imports_of=packer.imported_names)
    units = project.units()
    if not units:
        raise NothingToShip(
            config.root,
            [_where(project.root, r) for r in project.source_roots],
            tip=nothing_found_tip(project.root, project.source_roots),
        )
    packs, problems = packer.pack(units)
    check_sizes(packs, config)
    check_compiled(packs, config)
    return packed_plan(
        config, packer, units, packs, problems,
        held_back=tuple(sorted({**project.held_back(), **packer.held_back}.items())),
        readmitted=tuple(sorted(project.shipped_though_ignored().items())),
        computed_imports=packer.computed_imports(packs),
    )  # fmt: skip


def packed_plan(
    config: Config,
    packer: Packer,
    units: Sequence[Unit],
    packs: Sequence[Pack],
    problems: Sequence[SyntaxProblem],
    **more: Any,
) -> Plan:
    """The plan of what ``packer`` just packed of ``units``: what a watch hands the install
    after each push (the imports come from the packer's memory, by file content)."""
    unpacked = [unit for unit in units if unit.name in {p.unit for p in problems}]
    return Plan(
        config=config,
        packs=tuple(packs),
        problems=tuple(problems),
        units=tuple(units),
        imports=packer.imports_of(packs) | packer.imported_names(unpacked),
        optional_imports=packer.optional_imports(packs, unpacked),
        **more,
    )


def _where(root: Path, folder: Path) -> str:
    relative = folder.relative_to(root).as_posix()
    return "its top folder" if relative == "." else f"{relative}/"
