"""What the cluster runs, node by node: shipped code, Python, key versions, nanny, directory.

Example::

    report = shipit.status(client)
    [n.address for n in report.nodes if n.behind]
    # ['tcp://10.0.0.7:40331']
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from distributed import Client

from .ask import ask
from .config import DEFAULT_TIMEOUT, load_config
from .connection import connect
from .errors import ShipitError
from .node import checks as nodecheck
from .node import probe as nodeinfo
from .parity.versions import DASK_OPTIONAL, DASK_STACK
from .project.discover import Project
from .project.pack import digest_on_disk
from .report import Shown
from .shipper import Shipper, project_id
from .text import aligned, size_text

KEY_VERSIONS = ("dask", "distributed", "cloudpickle")


@dataclass(frozen=True)
class NodeStatus:
    """One node. ``units`` maps each shipped unit to its digest there; ``behind`` names the
    units of this project it lacks or holds at another digest than the local files."""

    address: str
    role: Literal["client", "scheduler", "worker"]
    name: str | None = None
    python: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    behind: tuple[str, ...] = ()
    nanny: str | None = None
    local_directory: str | None = None
    error: str | None = None
    # Of the requirements shipit installed on the cluster (for this project), those this
    # node holds and those it lacks; ``joining`` says a worker's install on joining is at it.
    holds: tuple[str, ...] = ()
    lacks: tuple[str, ...] = ()
    joining: str | None = None
    # False for a node in a process that holds a user's objects (a notebook's LocalCluster):
    # shipped code is importable there, but modules it loaded are never swapped.
    switches: bool | None = None


@dataclass(frozen=True)
class ClusterStatus(Shown):
    """Every node's state, next to the client's: ``local`` maps this project's units to the
    digests of the files on disk."""

    scheduler: str
    client: NodeStatus
    local: dict[str, str]
    nodes: tuple[NodeStatus, ...]
    seconds: float = 0.0
    # Every unit the scheduler holds, of any project: (name, project, files, bytes).
    held: tuple[tuple[str, str, int, int], ...] = ()
    held_bytes: int = 0  # what the scheduler keeps in memory for them

    @property
    def behind(self) -> tuple[NodeStatus, ...]:
        """The nodes that lack this project's current code, or did not answer."""
        return tuple(n for n in self.nodes if n.behind or n.error)

    @property
    def summary(self) -> str:
        workers = sum(n.role == "worker" for n in self.nodes)
        units = len(self.local)
        if not self.behind:
            return (
                f"{workers} worker(s) and the scheduler run the current code of "
                f"{units} unit(s)" + ("" if units else " (nothing of this project shipped)")
            )
        names = ", ".join(n.address for n in self.behind)
        return f"{len(self.behind)} node(s) behind the local files or not answering: {names}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary}

    def text(self) -> str:
        return "\n".join([*(line for line, _ in self.lines()), self.summary])

    def held_lines(self) -> list[str]:
        """What the scheduler holds, unit by unit, with the project each came from."""
        if not self.held:
            return ["the scheduler holds no shipped code"]
        rows = [("unit", "project", "files", "size")]
        rows += [(n, p, str(f), size_text(b, binary=False)) for n, p, f, b in self.held]
        held = size_text(self.held_bytes, binary=False)
        return [*aligned(rows), f"the scheduler holds {len(self.held)} unit(s), {held}"]

    def lines(self) -> list[tuple[str, bool]]:
        """The table, one line per node after the client's: (text, whether it stands out)."""
        keys = list(KEY_VERSIONS)
        header = (
            "node",
            "name",
            "python",
            *keys,
            "nanny",
            "requirements",
            "units",
            "local directory",
        )
        rows = [header, _row(self.client, keys, "this project")]
        rows += [_row(n, keys) for n in self.nodes]
        flags = [False, False, *(bool(n.behind or n.error) for n in self.nodes)]
        return list(zip(aligned(rows), flags, strict=True))


def _row(node: NodeStatus, keys: list[str], units: str | None = None) -> tuple[str, ...]:
    name = node.role if node.name in (None, node.address) else str(node.name)
    if node.switches is False:
        name += " (in-process: keeps its modules)"
    if node.error:
        return (
            node.address,
            name,
            "-",
            *("-" for _ in keys),
            "-",
            "-",
            f"NO ANSWER: {node.error}",
            "",
        )
    shipped = _some([f"{u} {d[:8]}" for u, d in sorted(node.units.items())]) or "none"
    if node.behind:
        shipped = f"BEHIND ({_some(list(node.behind))}): {shipped}"
    nanny = "-" if node.role != "worker" else "yes" if node.nanny else "NO"
    held = (
        f"{len(node.holds)}/{len(node.holds) + len(node.lacks)}"
        if node.holds or node.lacks
        else "-"
    )
    if node.lacks:
        doing = node.joining if node.joining in ("installing", "failed") else "lacks"
        held += f" ({doing} {_some(list(node.lacks), 2)})"
    return (
        node.address,
        name,
        node.python or "?",
        *(node.versions.get(k) or "-" for k in keys),
        nanny,
        held,
        f"{units}: {shipped}" if units else shipped,
        node.local_directory or "",
    )


def _some(items: list[str], shown: int = 4) -> str:
    if len(items) <= shown:
        return ", ".join(items)
    return f"{', '.join(items[:shown])}, and {len(items) - shown} more"


def status(
    client: Client | str | None = None,
    path: str | Path = ".",
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> ClusterStatus:
    """Read every node's shipped units, Python, Dask versions, nanny and local directory, and
    compare the units with the project at ``path``.

    Example::

        shipit.status("tcp://10.0.0.5:8786").summary
        # '4 worker(s) and the scheduler run the current code of 1 unit(s)'
    """
    started = time.perf_counter()
    local = _local_digests(path)
    with connect(client, timeout) as c:
        state = Shipper(c, Path(path).resolve()).agent_state() or {}
        pins = _pins(state, Path(path).resolve(), bool(local))
        names = [*DASK_STACK, *DASK_OPTIONAL, *(p.partition("==")[0] for p in pins)]
        described = ask(c, nodecheck, nodecheck.describe, timeout=timeout, scheduler=False)
        # A worker that did not answer once is not asked again (and waited for) twice.
        answered = sorted(described.workers)
        infos = ask(c, nodeinfo, nodeinfo.probe, names, timeout=timeout, workers=answered)
        infos.errors.update(described.errors)
        scheduler = str(getattr(c.scheduler, "address", ""))
    nodes = [_node(scheduler, "scheduler", infos.scheduler, {}, local, infos.errors, pins)]
    for address in sorted(set(infos.workers) | set(infos.errors) - {scheduler}):
        facts = described.workers.get(address, {})
        nodes.append(
            _node(address, "worker", infos.workers.get(address), facts, local, infos.errors, pins)
        )
    mine = nodeinfo.probe(names)
    return ClusterStatus(
        scheduler=scheduler,
        client=_node("client", "client", {**mine, "units": local}, {}, local, {}, pins),
        local=local,
        nodes=tuple(nodes),
        seconds=time.perf_counter() - started,
        held=tuple(
            (
                name,
                str(u.get("project", "?")),
                len(u.get("manifest", {})),
                int(state.get("sizes", {}).get(name, 0)),
            )
            for name, u in sorted(state.get("units", {}).items())
        ),
        held_bytes=int(state.get("held_bytes", 0)),
    )


def _node(
    address: str,
    role: Literal["client", "scheduler", "worker"],
    info: dict[str, Any] | None,
    facts: dict[str, Any],
    local: dict[str, str],
    errors: dict[str, str],
    pins: Sequence[str] = (),
) -> NodeStatus:
    if info is None:
        return NodeStatus(address, role, error=errors.get(address, "no answer"))
    units = dict(info.get("units") or {})
    packages = info.get("packages") or {}
    versions = {
        name: (packages.get(name) or {}).get("version") for name in (*DASK_STACK, *DASK_OPTIONAL)
    }
    return NodeStatus(
        address=address,
        role=role,
        name=facts.get("name"),
        python=info.get("python"),
        versions={k: v for k, v in versions.items() if v is not None or k in KEY_VERSIONS},
        units=units,
        behind=tuple(sorted(n for n, digest in local.items() if units.get(n) != digest)),
        nanny=facts.get("nanny"),
        local_directory=facts.get("local_directory"),
        holds=tuple(p for p in pins if _version(packages, p) == p.partition("==")[2]),
        lacks=tuple(p for p in pins if _version(packages, p) != p.partition("==")[2]),
        joining=(info.get("joined") or {}).get("state"),
        switches=info.get("switches"),
    )


def _version(packages: dict[str, Any], pin: str) -> str | None:
    return (packages.get(pin.partition("==")[0]) or {}).get("version")


def _pins(state: dict[str, Any], root: Path, in_project: bool) -> list[str]:
    """The requirements shipit installed on the cluster: this project's, or (outside any
    project) every project's."""
    records = state.get("requirements") or {}
    if in_project:
        records = {k: v for k, v in records.items() if k == project_id(root)}
    return sorted({p for r in records.values() for p in r.get("requirements", ())})


def _local_digests(path: str | Path) -> dict[str, str]:
    """Each unit of the project at ``path``, with the digest a sync would ship; empty when
    ``path`` is no project (status of a cluster, from anywhere)."""
    try:
        units = Project(load_config(path)).units()
    except ShipitError:
        return {}
    return {unit.name: digest_on_disk(unit) for unit in units}
