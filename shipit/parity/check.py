"""Version parity: does every node run what the client runs? One check, read fresh from every node.

The project says what to compare (the distributions its code imports, its declared
dependencies, ``[tool.shipit] extra-packages``, Dask's own stack); ``shipit.nodeinfo`` reads
the facts in the client, on the scheduler and on every worker; ``shipit.parity.versions`` compares.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import Client
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .. import kernel
from ..ask import ask_at_once
from ..config import DEFAULT_TIMEOUT, Config, load_config
from ..connection import connect
from ..errors import ConfigError, ConnectionFailed, VersionMismatch
from ..node import probe as nodeinfo
from ..project.discover import Project, Unit
from ..project.imports import distributions_for, imported_names, optional_names
from ..project.pack import Packer, digest_on_disk
from ..report import ParityReport, VersionRow
from .versions import DASK_OPTIONAL, DASK_STACK, Facts, compare

if TYPE_CHECKING:
    from ..project.plan import Plan

logger = logging.getLogger(__name__)

# Client-side tools: the nodes never import them.
_CLIENT_ONLY = frozenset({"shipit"})


def check(
    client: Client | str | None = None,
    path: str | Path = ".",
    *,
    strict: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> ParityReport:
    """Compare Python, packages and shipped code across the client, the scheduler and every worker.

    ``client`` is a connected :class:`distributed.Client`, a scheduler address, or None for
    ``DASK_SCHEDULER_ADDRESS``. Versions are read from disk on every node at every call. With
    ``strict`` (the default) any row at error level raises :class:`VersionMismatch`, whose
    message is the table.

    Example::

        report = shipit.check(client, strict=False)
        [(row.package, row.workers) for row in report.errors]
        # [('numpy', '7 workers: 2.1.0; 2.0.0 on tcp://10.0.0.7:40331')]
    """
    parity = Parity(path)
    with connect(client, timeout) as connected:
        report = parity.report(connected, timeout)
    if strict and not report.ok:
        raise VersionMismatch(report)
    return report


class Parity:
    """The project's side of a check, read once; ``report`` reads the cluster's side fresh."""

    def __init__(self, project: Config | str | Path = ".", plan: Plan | None = None) -> None:
        """``project`` is its config or its folder; ``plan``, a :func:`shipit.plan` just
        made, gives its config, units, digests and imports without reading them again."""
        if plan is not None:
            self.config = plan.config
        else:
            self.config = project if isinstance(project, Config) else load_config(project)
        self.refresh_project(plan)

    def refresh_project(self, plan: Plan | None = None) -> None:
        """Read the project again (its imports and the digest of each unit it ships), or
        take them from ``plan``, a :func:`shipit.plan` just made."""
        units = Project(self.config).units() if plan is None else plan.units
        self.units = tuple(units)
        if plan is not None and plan.imports is not None:
            imports, optional = plan.imports, plan.optional_imports
        else:
            files = [unit.root / f for unit in units for f in unit.files if f.endswith(".py")]
            imports, optional = imported_names(files), optional_names(files)
        self.wanted = wanted_distributions(self.config, units, imports - optional)
        self.optional = optional_distributions(self.config, units, optional, self.wanted)
        project = self.config.pyproject.get("project", {})
        name = project.get("name") if isinstance(project, dict) else None
        by = name if isinstance(name, str) else self.config.root.name
        self.declared = {str(canonicalize_name(d)): by for d in _declared(self.config)}
        packed = {} if plan is None else {pack.name: pack.digest for pack in plan.packs}
        self.digests = {unit.name: packed.get(unit.name) or digest_on_disk(unit) for unit in units}
        self.severity: dict[str, str] = {
            **self.config.severity,
            **{canonicalize_name(k): v for k, v in self.config.severity.items()},
        }

    def report(self, client: Client, timeout: float = DEFAULT_TIMEOUT) -> ParityReport:
        started = time.perf_counter()
        names = [*self.wanted, *self.optional]
        local = {**nodeinfo.probe(names), "units": self.digests}
        scheduler, workers = _probe_cluster(client, names, timeout)
        rows = compare(
            local, scheduler, workers, self.wanted, severity=self.severity,
            declared=self.declared, optional=self.optional,
        )  # fmt: skip
        rows = _syntax_advice(rows, self.units) + tuple(loaded_rows(rows, kernel.look(self.units)))
        return ParityReport(
            rows=rows,
            scheduler=str(getattr(client.scheduler, "address", "")),
            workers=tuple(sorted(workers)),
            seconds=time.perf_counter() - started,
        )


def wanted_distributions(
    config: Config, units: Sequence[Unit], imports: frozenset[str] | None = None
) -> dict[str, bool]:
    """Canonical names of the distributions to compare: True where every node needs them.

    Dask's stack, then the distributions the units import (read with ``ast``), the
    ``[project] dependencies`` and ``[tool.shipit] extra-packages``; less ``ignore``, the
    editable projects shipit ships as code, and shipit itself. ``imports``, the names the
    units import when a plan read them already, spares reading the files again.

    Example::

        wanted_distributions(load_config("examples/montecarlo"), units)
        # {'dask': True, ..., 'numpy': True}
    """
    own = {unit.name for unit in units}
    if imports is None:
        files = (unit.root / f for unit in units for f in unit.files if f.endswith(".py"))
        imports = imported_names(files)
    provided = distributions_for(imports - own)
    names = {name for dists in provided.values() for name in dists}
    names |= set(_declared(config))
    names |= {_requirement(e, "[tool.shipit] extra-packages").name for e in config.extra_packages}
    shipped = {u.origin.partition(":")[2] for u in units if u.origin.startswith("editable:")}
    skip = {canonicalize_name(n) for n in (*config.ignore, *shipped, *_CLIENT_ONLY)}
    wanted = {name: True for name in DASK_STACK} | {name: False for name in DASK_OPTIONAL}
    wanted |= {name: True for name in sorted(map(canonicalize_name, names))}
    return {name: required for name, required in wanted.items() if name not in skip}


def optional_distributions(
    config: Config, units: Sequence[Unit], optional: frozenset[str], wanted: Mapping[str, bool]
) -> tuple[str, ...]:
    """Canonical names of the distributions the code may use but runs without: those of
    imports guarded by a handler of a failed import, and the ``[project.optional-dependencies]``
    groups that ``[tool.shipit] extras`` does not name. Compared where nodes have them,
    never installed; ``extra-packages`` makes one required."""
    names = {n for dists in distributions_for(optional - {u.name for u in units}).values()
             for n in dists}  # fmt: skip
    names |= set(_declared(config, unnamed_extras=True))
    skip = {canonicalize_name(n) for n in (*config.ignore, *_CLIENT_ONLY)} | set(wanted)
    return tuple(sorted({str(canonicalize_name(n)) for n in names} - skip))


def _declared(config: Config, unnamed_extras: bool = False) -> Iterator[str]:
    """``[project] dependencies`` that apply to this Python and platform, and those of the
    extras ``[tool.shipit] extras`` names; with ``unnamed_extras``, those of every other
    extra instead."""
    project = config.pyproject.get("project")
    project = project if isinstance(project, dict) else {}
    groups = project.get("optional-dependencies")
    groups = groups if isinstance(groups, dict) else {}
    unknown = [e for e in config.extras if e not in groups]
    if unknown:
        raise ConfigError(
            f"[tool.shipit] extras names {', '.join(map(repr, unknown))}, which "
            f"[project.optional-dependencies] does not have (it has: {', '.join(groups) or 'none'})"
        )
    if unnamed_extras:
        chosen = [(g, e) for g, e in groups.items() if g not in config.extras]
    else:
        chosen = [("", project.get("dependencies", []))]
        chosen += [(g, groups[g]) for g in config.extras]
    for group, entries in chosen:
        where = f"[project.optional-dependencies] {group}" if group else "[project] dependencies"
        for entry in entries if isinstance(entries, list) else []:
            requirement = _requirement(entry, where)
            if requirement.marker is None or requirement.marker.evaluate({"extra": group}):
                yield requirement.name


def _requirement(text: object, where: str) -> Requirement:
    try:
        return Requirement(str(text))
    except InvalidRequirement as e:
        reason = (str(e).splitlines() or ["invalid"])[0]  # packaging adds a caret diagram
        raise ConfigError(f"{where}: {text!r} is not a requirement: {reason}") from None


def _probe_cluster(
    client: Client, names: list[str], timeout: float
) -> tuple[Facts, dict[str, Facts]]:
    """Run the probe on the scheduler and every worker at once; failures become data."""
    scheduler, workers = ask_at_once(client, nodeinfo, nodeinfo.probe, names, timeout=timeout)
    if isinstance(workers, OSError):  # the scheduler went away mid-check
        address = str(getattr(client.scheduler, "address", "?"))
        raise ConnectionFailed(address, f"{type(workers).__name__}: {workers}", timeout)
    if isinstance(workers, BaseException):
        raise workers
    return _facts(scheduler), {address: _facts(f) for address, f in workers.items()}


def _facts(answer: Any) -> Facts:
    if isinstance(answer, BaseException):
        return {"error": f"{type(answer).__name__}: {answer}"}
    return dict(answer)


def loaded_rows(rows: Sequence[VersionRow], stale: Sequence[kernel.Stale]) -> list[VersionRow]:
    """A row per unit whose modules this process loaded before their files changed, where
    the cluster runs those files: the client process (a notebook's kernel) runs older code
    than its tasks do."""
    found = []
    for unit in sorted({s.unit for s in stale}):
        code = next((r for r in rows if r.kind == "code" and r.package == unit), None)
        if code is None or code.severity != "ok":  # the cluster is not on the files either
            continue
        modules = ", ".join(f"`{s.module}`" for s in stale if s.unit == unit)
        hint = (
            f"the client process runs an older {modules} than the cluster: reload it "
            "(`%load_ext shipit` keeps a notebook in step), or restart this process"
        )
        found.append(
            VersionRow(unit, "loaded", "older", code.scheduler, code.workers, "error", hint)
        )
    return found


def _syntax_advice(rows: Sequence[VersionRow], units: Sequence[Unit]) -> tuple[VersionRow, ...]:
    """Local edits not shipped because a file does not compile: the row names the file and
    line (a sync would refuse it), not "run sync"."""
    by_name = {u.name: u for u in units}
    advised = []
    for row in rows:
        unit = by_name.get(row.package) if row.kind == "code" else None
        if unit is not None and row.severity == "warning":
            _, problems = Packer().pack([unit])
            if problems:
                hint = f"{problems[0]}: fix it and save; the cluster keeps the last good code"
                row = dataclasses.replace(row, suggestion=hint)
        advised.append(row)
    return tuple(advised)
