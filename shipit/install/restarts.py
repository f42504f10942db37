"""Workers that run other code than their environment holds, and restarting them.

A worker that imported a package before pip replaced it keeps running the old code until
its process restarts. The parity check tells which (a cell such as ``"2.0.0 installed,
1.0.0 loaded"``); only those restart, through their nannies. A worker without a nanny
cannot be restarted from here: Dask would only shut it down, so it is reported instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from distributed import Client

from ..report import ParityReport, VersionRow, WorkerRestart
from .requirements import SCHEDULER, installed_version, stale

logger = logging.getLogger(__name__)


def stale_nodes(report: ParityReport) -> dict[str, tuple[str, ...]]:
    """Nodes whose process runs other code than their environment holds, and which packages.

    Example::

        stale_nodes(report)
        # {'tcp://127.0.0.1:4001': ('instpkg 2.0.0 installed, 1.0.0 loaded',)}
    """
    found: dict[str, list[str]] = {}
    for row in report.rows:
        if row.kind == "package":
            for node, cell in {**row.by_worker, SCHEDULER: row.scheduler}.items():
                if stale(cell):
                    found.setdefault(node, []).append(f"{row.package} {cell}")
    return {node: tuple(packages) for node, packages in sorted(found.items())}


def needed(report: ParityReport) -> tuple[WorkerRestart, ...]:
    """The restarts the report calls for, none done."""
    return tuple(
        _scheduler(found) if node == SCHEDULER else WorkerRestart(node, "needs restart", found)
        for node, found in stale_nodes(report).items()
    )


def restart_stale(client: Client, report: ParityReport, timeout: float) -> list[WorkerRestart]:
    """Restart, through their nannies, exactly the workers the report finds stale."""
    nodes = stale_nodes(report)
    info = client.scheduler_info(n_workers=-1)["workers"]
    # Client.restart_workers refuses a list that holds a worker without a nanny.
    nannies = [node for node in nodes if info.get(node, {}).get("nanny")]
    outcome: dict[str, str] = {}
    if nannies:
        logger.info("restarting %s", ", ".join(nannies))
        try:
            outcome = client.restart_workers(nannies, timeout=timeout, raise_for_error=False)
        except Exception as e:  # a restart that breaks is reported, like a failed pip
            outcome = {node: f"{type(e).__name__}: {e}" for node in nannies}
    results = []
    for node, packages in nodes.items():
        if node == SCHEDULER:
            results.append(_scheduler(packages))
        elif node in outcome:
            if outcome[node] == "OK":
                results.append(WorkerRestart(node, "restarted", packages))
            else:
                results.append(WorkerRestart(node, "failed", packages, str(outcome[node])))
        elif node not in info:
            results.append(WorkerRestart(node, "failed", packages, "it left the cluster"))
        else:
            results.append(WorkerRestart(node, "no nanny", packages))
    return results


def only_restarts(row: VersionRow, required: Mapping[str, bool]) -> bool:
    """An error row whose nodes all have the client's version installed: restarts fix it."""
    if row.kind != "package":
        return False
    for cell in (*row.by_worker.values(), row.scheduler):
        have = installed_version(cell)
        absent_is_fine = have is None and not required.get(row.package, True)
        if cell != "?" and have != row.client and not absent_is_fine:
            return False
    return True


def _scheduler(packages: tuple[str, ...]) -> WorkerRestart:
    return WorkerRestart(SCHEDULER, "needs restart", packages, "shipit restarts workers only")
