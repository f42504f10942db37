"""What to install where: pinned requirements from a parity report, grouped by environment.

Pure functions over plain values: a report's rows, each node's environment (what
``shipit.installer.environment`` returns), the versions of local projects. Nothing here
touches a cluster, so every rule is tested with plain data.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from ..errors import BadRequirement
from ..report import VersionRow

SCHEDULER = "scheduler"  # the scheduler's key among the nodes
# PEP 508 names: letters, digits and ._- inside; never an option ("-e"), a path or a URL.
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


def pin(name: str, version: str) -> str:
    """``name==version``, refusing anything pip could read as an option, a path or a URL.

    >>> pin("numpy", "2.1.0")
    'numpy==2.1.0'
    """
    if not _NAME.fullmatch(name):
        raise BadRequirement(name, version, "not a distribution name")
    try:
        Version(version)
    except InvalidVersion:
        raise BadRequirement(name, version, "not a version pip understands") from None
    try:
        requirement = Requirement(f"{name}=={version}")
    except InvalidRequirement as e:
        raise BadRequirement(name, version, str(e)) from None
    return str(requirement)


def installed_version(cell: str | None) -> str | None:
    """The version installed on disk, from a parity cell; None when it is missing.

    Cells read ``"2.0.0"``, ``"2.0.0 installed, 1.0.0 loaded"``, ``"2.0.0, files changed
    since loaded"`` or ``"missing"`` (see ``shipit.parity.versions``).
    """
    if cell is None or cell in ("missing", "?"):
        return None
    return cell.partition(" installed, ")[0].partition(", files changed")[0]


def stale(cell: str) -> bool:
    """Whether a parity cell says the process runs other code than it has installed."""
    return " installed, " in cell or cell.endswith("files changed since loaded")


@dataclass(frozen=True)
class Group:
    """One Python environment on one host: the nodes in it and the one pip run they need."""

    key: str
    environment: Mapping[str, Any] = field(hash=False)
    nodes: tuple[str, ...]  # every node in this environment, the scheduler as "scheduler"
    ran_on: str  # the node whose process runs pip: a worker where there is one
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class Needs:
    """Per node, the pinned requirements it lacks; and why some differences were left alone."""

    by_node: Mapping[str, tuple[str, ...]]
    skipped: tuple[str, ...] = ()


def needs(
    rows: Iterable[VersionRow],
    required: Mapping[str, bool],
    local: Mapping[str, str] | None = None,
) -> Needs:
    """What each node must install to run what the client runs.

    ``rows`` are a parity report's; ``required`` says which distributions every node
    needs (others only need the client's version where present); ``local`` maps the
    canonical names of local projects to the version built from their folder, which wins
    over the client's. A local project that no row mentions is missing everywhere.

    Example::

        needs(report.rows, {"instpkg": True}).by_node
        # {'tcp://127.0.0.1:4001': ('instpkg==2.0.0',)}
    """
    local = dict(local or {})
    rows = list(rows)
    elsewhere = _other_python(rows)
    by_node: dict[str, list[str]] = {}
    skipped: list[str] = []
    seen: set[str] = set()
    nodes: set[str] = set()
    for row in rows:
        if row.kind != "package":
            continue
        nodes |= set(row.by_worker)
        seen.add(row.package)
        target = local.get(row.package, row.client)
        if installed_version(target) is None:
            skipped.append(f"{row.package}: not installed on the client, so no version to pin")
            continue
        try:
            requirement = pin(row.package, target)
        except BadRequirement as e:
            skipped.append(str(e))
            continue
        cells = {**row.by_worker, SCHEDULER: row.scheduler}
        for node, cell in cells.items():
            if cell == "?":  # the scheduler did not answer: the probe row says so
                continue
            have = installed_version(cell)
            if have is None and not required.get(row.package, True) and row.package not in local:
                continue  # Dask uses it where present; absent is fine
            if have != target:
                by_node.setdefault(node, []).append(requirement)
    for name, version in sorted(local.items()):
        if name not in seen:
            for node in sorted(nodes | {SCHEDULER}):
                by_node.setdefault(node, []).append(pin(name, version))
    # The client's tasks cannot run on another Python minor (the python row says so), and
    # the client's pins may not even exist for it: pip is not run there for nothing.
    for node, why in sorted(elsewhere.items()):
        if node in by_node:
            skipped.append(f"{node}: {why}: not installing {' '.join(sorted(by_node.pop(node)))}")
    return Needs({n: tuple(sorted(r)) for n, r in sorted(by_node.items())}, tuple(skipped))


def for_every_node(
    rows: Iterable[VersionRow],
    required: Mapping[str, bool],
    local: Mapping[str, str] | None = None,
    leave: Collection[str] = (),
) -> tuple[str, ...]:
    """The pins a node holding nothing would need: what a worker that joins installs.

    As :func:`needs` would plan for a node that lacks every distribution, less ``leave``
    (Dask's own stack: a worker that runs has it, and pip never swaps it under a running
    worker on its own).

    >>> row = VersionRow("numpy", "package", "2.1.0", "2.1.0", "1 worker: 2.1.0")
    >>> for_every_node([row], {"numpy": True}, {"mylib": "0.3"})
    ('mylib==0.3', 'numpy==2.1.0')
    """
    local = dict(local or {})
    pins = {}
    for row in rows:
        if row.kind == "package" and (required.get(row.package, True) or row.package in local):
            target = local.pop(row.package, row.client)
            if installed_version(target) is not None and row.package not in leave:
                with contextlib.suppress(BadRequirement):
                    pins[row.package] = pin(row.package, target)
    for name, version in local.items():
        with contextlib.suppress(BadRequirement):
            pins[name] = pin(name, version)
    return tuple(sorted(pins.values()))


def _other_python(rows: Sequence[VersionRow]) -> dict[str, str]:
    """The nodes whose Python minor differs from the client's, each with a line saying so."""
    row = next((r for r in rows if r.kind == "python"), None)
    if row is None:
        return {}
    minor = row.client.rpartition(".")[0]  # "3.11.7" -> "3.11"; "pypy 3.10.14" -> "pypy 3.10"
    cells = {**row.by_worker, SCHEDULER: row.scheduler}
    return {
        node: f"Python {cell}, the client runs {row.client}"
        for node, cell in cells.items()
        if cell != "?" and cell.rpartition(".")[0] != minor
    }


def group(
    by_node: Mapping[str, Sequence[str]], environments: Mapping[str, Mapping[str, Any]]
) -> tuple[list[Group], list[str]]:
    """One pip run per environment: the groups, and the nodes whose environment is unknown.

    ``environments`` maps every node that answered (needing an install or not) to what
    ``installer.environment`` returned there; nodes that share a ``key`` share a group.
    """
    members: dict[str, list[str]] = {}
    for node, env in environments.items():
        members.setdefault(str(env["key"]), []).append(node)
    groups, unknown = [], []
    wanted: dict[str, set[str]] = {}
    for node, requirements in by_node.items():
        if node not in environments:
            unknown.append(node)
            continue
        wanted.setdefault(str(environments[node]["key"]), set()).update(requirements)
    for key, pins in sorted(wanted.items()):
        nodes = sorted(members[key], key=lambda n: (n == SCHEDULER, n))
        groups.append(
            Group(
                key=key,
                environment=environments[nodes[0]],
                nodes=tuple(nodes),
                ran_on=nodes[0],
                requirements=tuple(sorted(pins)),
            )
        )
    return groups, sorted(unknown)
