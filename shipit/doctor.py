"""The checks a home or lab cluster needs before a long run, each ok, warning or failed.

Example::

    report = shipit.doctor("tcp://10.0.0.5:8786")
    [(f.check, f.status) for f in report.findings if f.status != "ok"]
    # [('worker connections', 'failed')]
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

import distributed
from distributed import Client

from .ask import Answers, ask
from .config import DEFAULT_TIMEOUT
from .connection import connect
from .node import checks as nodecheck
from .text import aligned

Status = Literal["ok", "warning", "failed"]
LOW_DISK = 2 * 10**9  # a warning below this much free space in a worker's directory
NO_DISK = 200 * 10**6  # a failure below this: spilling to disk will fail soon
CONNECT_TIMEOUT = 3.0  # per worker-to-worker connection


@dataclass(frozen=True)
class Finding:
    """One check: what it found, and for a warning or failure the one thing to do."""

    check: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class DoctorReport:
    scheduler: str
    findings: tuple[Finding, ...]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """False when a check failed; warnings do not fail a run."""
        return all(f.status != "failed" for f in self.findings)

    @property
    def summary(self) -> str:
        count = {s: sum(f.status == s for f in self.findings) for s in ("ok", "warning", "failed")}
        return (
            f"{len(self.findings)} checks on {self.scheduler}: {count['ok']} ok, "
            f"{count['warning']} warning(s), {count['failed']} failed"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "summary": self.summary}

    def lines(self) -> list[tuple[str, Status]]:
        """One line per check, and under a warning or a failure the fix."""
        out: list[tuple[str, Status]] = []
        for finding, text in zip(
            self.findings,
            aligned([(f.status, f.check, f.detail) for f in self.findings]),
            strict=True,
        ):
            out.append((text, finding.status))
            if finding.fix and finding.status != "ok":
                out.append((f"{'':9}fix: {finding.fix}", finding.status))
        return out


def doctor(client: Client | str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> DoctorReport:
    """Check the scheduler, the workers, Python versions, worker-to-worker connections, the
    dashboard, disk, memory limits and nannies. An unreachable scheduler raises
    :class:`ConnectionFailed`; everything else is a finding.

    Example::

        shipit.doctor(client).ok
        # True
    """
    started = time.perf_counter()
    with connect(client, timeout) as c:
        scheduler = str(getattr(c.scheduler, "address", ""))
        facts = ask(c, nodecheck, nodecheck.describe, timeout=timeout)
        reachable = sorted(facts.workers)
        every = sorted(set(facts.workers) | set(facts.errors) - {scheduler})
        links = ask(
            c,
            nodecheck,
            nodecheck.reach,
            timeout=timeout + CONNECT_TIMEOUT,
            scheduler=False,
            per_worker=lambda _: (every, CONNECT_TIMEOUT),
            workers=reachable,  # the others did not answer the first question either
        )
        dashboard = c.dashboard_link
    findings = [
        *_scheduler(scheduler, facts),
        _workers(facts, scheduler),
        _python(facts),
        _connections(links, reachable, every),
        _dashboard(facts, dashboard),
        *_disk(facts),
        _memory(facts),
        _nannies(facts),
    ]
    return DoctorReport(scheduler, tuple(findings), time.perf_counter() - started)


def _scheduler(address: str, facts: Answers) -> Iterator[Finding]:
    if address in facts.errors:
        yield Finding(
            "scheduler",
            "failed",
            f"{address} answers but cannot run a probe: {facts.errors[address]}",
            "look at the scheduler's log; restart it",
        )
        return
    node = facts.scheduler or {}
    theirs, ours = node.get("distributed"), distributed.__version__
    detail = f"{address} answers; distributed {theirs}"
    if theirs != ours:
        yield Finding(
            "scheduler",
            "warning",
            f"{detail}, the client has {ours}",
            f"install distributed=={ours} on the scheduler (or the client's to match); "
            "`shipit check` lists every difference",
        )
    else:
        yield Finding("scheduler", "ok", detail)


def _workers(facts: Answers, scheduler: str) -> Finding:
    answered = facts.workers
    silent = {a: why for a, why in facts.errors.items() if a != scheduler}
    if not answered and not silent:
        return Finding(
            "workers",
            "failed",
            "no worker is connected",
            f"start workers: dask worker {scheduler}",
        )
    names = ", ".join(
        a if info["name"] == a else f"{info['name']} ({a})" for a, info in sorted(answered.items())
    )
    detail = f"{len(answered)} connected: {names}" if answered else "none answers"
    if silent:
        which = "; ".join(f"{a}: {why}" for a, why in sorted(silent.items()))
        return Finding(
            "workers",
            "failed",
            f"{detail}; the scheduler cannot reach {len(silent)}: {which}",
            "open the worker's port to the scheduler, or start it with --contact-address "
            "set to an address the scheduler can reach",
        )
    return Finding("workers", "ok", detail)


def _python(facts: Answers) -> Finding:
    ours = platform.python_version()
    seen: dict[str, list[str]] = {}
    nodes = {"client": {"python": ours}, **facts.workers}
    if facts.scheduler:
        nodes["scheduler"] = facts.scheduler
    for node, info in nodes.items():
        seen.setdefault(".".join(str(info["python"]).split(".")[:2]), []).append(node)
    if len(seen) == 1:
        return Finding("python", "ok", f"Python {next(iter(seen))} on all {len(nodes)} processes")
    mine = ".".join(ours.split(".")[:2])
    others = "; ".join(f"{v} on {', '.join(sorted(n))}" for v, n in sorted(seen.items()))
    return Finding(
        "python",
        "failed",
        f"Python versions differ: {others}",
        f"use Python {mine} on every node: pickle across minor versions breaks tasks",
    )


def _connections(links: Answers, reachable: list[str], every: list[str]) -> Finding:
    if len(every) < 2:
        return Finding("worker connections", "ok", "one worker: no connection to check")
    broken = [
        f"{source} -> {target}: {why}"
        for source, answers in sorted(links.workers.items())
        for target, why in sorted(answers.items())
        if why is not None
    ]
    untested = sorted(set(reachable) - set(links.workers))
    if broken:
        return Finding(
            "worker connections",
            "failed",
            f"{len(broken)} of {sum(len(a) for a in links.workers.values())} connections "
            f"failed: {'; '.join(broken)}",
            "open the workers' ports between machines (fix them with --worker-port), or "
            "set --contact-address to an address the other workers can reach",
        )
    tested = sum(len(a) for a in links.workers.values())
    detail = f"{tested} worker-to-worker connections opened"
    if untested:
        return Finding(
            "worker connections",
            "warning",
            f"{detail}; not tested from {', '.join(untested)}",
            "run shipit doctor again",
        )
    return Finding("worker connections", "ok", detail)


def _dashboard(facts: Answers, link: str | None) -> Finding:
    scheduler = facts.scheduler or {}
    if scheduler.get("dashboard") is False:  # None: an older agent did not say
        return Finding("dashboard", "ok", "off: the scheduler was started without a dashboard")
    if scheduler.get("bokeh"):
        return Finding("dashboard", "ok", f"bokeh is installed on the scheduler: {link}")
    return Finding(
        "dashboard",
        "warning",
        "bokeh is not installed on the scheduler: the dashboard shows nothing",
        "pip install 'bokeh>=3.1' in the scheduler's environment, then restart the scheduler",
    )


def _disk(facts: Answers) -> Iterator[Finding]:
    low: list[str] = []
    worst: Status = "ok"
    for address, info in sorted(facts.workers.items()):
        free = info.get("free_disk")
        if free is not None and free < LOW_DISK:
            low.append(f"{address}: {free / 1e9:.2f} GB free in {info['local_directory']}")
            worst = "failed" if free < NO_DISK or worst == "failed" else "warning"
    if not low:
        frees = [i["free_disk"] for i in facts.workers.values() if i.get("free_disk") is not None]
        least = f"; least {min(frees) / 1e9:.1f} GB" if frees else ""
        yield Finding("disk", "ok", f"every worker's local directory has room{least}")
        return
    yield Finding(
        "disk",
        worst,
        "; ".join(low),
        "free space there, or start the worker with --local-directory on a larger disk",
    )


def _memory(facts: Answers) -> Finding:
    unset = sorted(a for a, info in facts.workers.items() if not info.get("memory_limit"))
    if unset:
        return Finding(
            "memory limit",
            "warning",
            f"no memory limit on {', '.join(unset)}",
            "start workers with --memory-limit (e.g. 4GB): Dask then spills and pauses "
            "before the operating system kills the process",
        )
    limits = sorted(info["memory_limit"] for info in facts.workers.values())
    least = f"; smallest {limits[0] / 1e9:.1f} GB" if limits else ""
    count = len(facts.workers)
    return Finding("memory limit", "ok", f"each of the {count} workers has a memory limit{least}")


def _nannies(facts: Answers) -> Finding:
    bare = sorted(a for a, info in facts.workers.items() if not info.get("nanny"))
    if bare:
        return Finding(
            "nannies",
            "warning",
            f"no nanny on {', '.join(bare)}: restarts (client.restart, shipit sync "
            "--restart) cannot restart it",
            "start workers without --no-nanny",
        )
    return Finding("nannies", "ok", f"each of the {len(facts.workers)} workers has a nanny")
