"""Results are values: what a sync shipped and what each node said; what a parity check found."""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .text import aligned, names, plural


class Shown:
    """Shows as its text in IPython and Jupyter: what the command line prints for it."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # IPython takes a class's own __repr__ (a dataclass has one) over an inherited
        # _repr_pretty_: give each its own.
        cls._repr_pretty_ = Shown._repr_pretty_  # type: ignore[method-assign]

    def text(self) -> str:
        raise NotImplementedError

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.text())}</pre>"


UnitStatus = Literal["shipped", "unchanged", "removed", "not shipped"]
Severity = Literal["ok", "warning", "error"]
InstallStatus = Literal["installed", "satisfied", "failed", "planned"]
RestartStatus = Literal["restarted", "needs restart", "no nanny", "failed"]


@dataclass(frozen=True)
class SyntaxProblem:
    """A file that does not compile: it keeps its unit from shipping."""

    path: str
    line: int | None
    message: str
    unit: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class UnitResult:
    """One unit in a sync: ``bytes_sent`` is the size of the zip that crossed the wire."""

    name: str
    status: UnitStatus
    digest: str | None = None
    files: int = 0
    size: int = 0
    bytes_sent: int = 0
    origin: str = "project"


@dataclass(frozen=True)
class NodeResult:
    """One node's answer: ``error`` is None when it confirmed every new digest."""

    address: str
    role: Literal["scheduler", "worker"]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class SyncReport(Shown):
    """What a sync did. ``ok`` is False when a unit did not compile or a node failed."""

    units: tuple[UnitResult, ...]
    nodes: tuple[NodeResult, ...] = ()
    problems: tuple[SyntaxProblem, ...] = ()
    seconds: float = 0.0
    generation: int | None = None
    # (nodes holding the current code, all nodes) after the push; ``nodes`` lists only
    # those the push went to, which is none where the cluster held this code already.
    holding: tuple[int, int] | None = None
    notes: tuple[str, ...] = field(default=())
    install: InstallReport | None = None  # what `sync` installed, unless install=False
    # Files inside the units that never ship: (path, why), a secret's name or a private key.
    held_back: tuple[tuple[str, str], ...] = ()
    readmitted: tuple[tuple[str, str], ...] = ()  # shipped though .gitignore lists them

    @property
    def ok(self) -> bool:
        installed = self.install is None or self.install.ok
        return not self.problems and all(n.ok for n in self.nodes) and installed

    @property
    def shipped(self) -> tuple[UnitResult, ...]:
        return tuple(u for u in self.units if u.status == "shipped")

    @property
    def failures(self) -> dict[str, str]:
        return {n.address: n.error for n in self.nodes if n.error is not None}

    @property
    def confirmed(self) -> int:
        return sum(n.ok for n in self.nodes)

    @property
    def where_current(self) -> str:
        """``"current on 3/3 nodes"``: where the cluster holds this code now."""
        held, total = self.holding or (self.confirmed, len(self.nodes))
        return f"current on {held}/{total} nodes"

    def text(self) -> str:
        lines = [f"{u.status:<10} {u.name}" for u in self.units]
        lines += [f"syntax error  {p}" for p in self.problems]
        lines += [f"failed     {a}: {e}" for a, e in self.failures.items()]
        lines.append(f"{len(self.shipped)} unit(s) shipped, {self.where_current}")
        return "\n".join(lines + ([self.install.text()] if self.install is not None else []))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["problems"] = [str(p) for p in self.problems]
        data["install"] = self.install.to_dict() if self.install is not None else None
        return data


@dataclass(frozen=True)
class EnvironmentInstall:
    """One pip run, for every node that shares one Python environment on one host.

    pip ran in ``ran_on``'s process; the other ``nodes`` live in the same environment, so
    that run covered them. ``installed`` lists what pip says it installed ("pkg-2.0.0").
    """

    host: str
    prefix: str
    nodes: tuple[str, ...]
    ran_on: str
    requirements: tuple[str, ...]
    status: InstallStatus
    installed: tuple[str, ...] = ()
    error: str | None = None
    wheels: tuple[str, ...] = ()  # wheel files the client shipped with the run
    options: tuple[str, ...] = ()  # pip's options on the node
    output: str = ""  # the end of pip's output
    unobtainable: tuple[str, ...] = ()  # requirements pip could not find; the rest it tried
    seconds: float = 0.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.prefix}"

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def line(self) -> str:
        """``installed  instpkg==2.0.0  on host:/venv  2 nodes (tcp://..., ...)  1.2 s``."""
        packages = " ".join(self.requirements)
        label = {"planned": "would install"}.get(self.status)
        who = f"{len(self.nodes)} node{plural(len(self.nodes))} ({names(self.nodes)})"
        if self.status == "failed":
            failed = " ".join(self.unobtainable) or packages
            done = f"; installed the others: {' '.join(self.installed)}" if self.installed else ""
            return f"failed     {failed}  on {self.where}  {who}: {self.error}{done}"
        timing = f"  {self.seconds:.1f} s" if self.status != "planned" else ""
        return f"{label or self.status:<10} {packages}  on {self.where}  {who}{timing}"


@dataclass(frozen=True)
class WorkerRestart:
    """A worker that runs other code than its environment now holds, and what became of it."""

    worker: str
    status: RestartStatus
    packages: tuple[str, ...]  # "instpkg 2.0.0 installed, 1.0.0 loaded"
    detail: str = ""

    def line(self) -> str:
        stale = "; ".join(self.packages)
        if self.status == "restarted":
            return f"restarted  {self.worker}  ({stale})"
        if self.status == "no nanny":
            return f"no nanny   {self.worker}: restart it yourself ({stale})"
        if self.status == "failed":
            return f"failed     restart of {self.worker}: {self.detail} ({stale})"
        if self.detail:
            return f"restart    {self.worker} yourself: {self.detail} ({stale})"
        return f"restart    {self.worker} to load it ({stale}); or sync with --restart"


@dataclass(frozen=True)
class InstallReport(Shown):
    """What an install did, per environment and per worker, and what the check found after.

    ``ok`` is False when a pip run or a restart failed, or when the check after the install
    still finds errors that a restart would not fix (``remaining``).
    """

    runs: tuple[EnvironmentInstall, ...] = ()
    restarts: tuple[WorkerRestart, ...] = ()
    skipped: tuple[str, ...] = ()  # why a difference was not turned into an install
    remaining: tuple[VersionRow, ...] = ()
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def failed(self) -> tuple[EnvironmentInstall, ...]:
        return tuple(r for r in self.runs if r.status == "failed")

    @property
    def needs_restart(self) -> tuple[str, ...]:
        return tuple(r.worker for r in self.restarts if r.status != "restarted")

    @property
    def ok(self) -> bool:
        # "no nanny": a restart was asked for and could not happen; that worker runs old code.
        restarts_failed = any(r.status in ("failed", "no nanny") for r in self.restarts)
        return not self.failed and not restarts_failed and not self.remaining

    @property
    def summary(self) -> str:
        n = len(self.runs)
        nodes = sum(len(r.nodes) for r in self.runs)
        if self.dry_run:
            head = f"would run pip in {n} environment{plural(n)} ({nodes} nodes)"
            return head + "; nothing was installed" if n else "nothing to install"
        if not n:
            head = "nothing to install"
        else:
            done = sum(r.status != "failed" for r in self.runs)
            head = f"pip ran in {n} environment{plural(n)} ({nodes} nodes), {done} ok"
            head += f", {len(self.failed)} failed" if self.failed else ""
        restarted = sum(r.status == "restarted" for r in self.restarts)
        head += f"; restarted {restarted} worker{plural(restarted)}" if restarted else ""
        waiting = self.needs_restart
        if waiting:  # "the scheduler and 1 worker need a restart"
            workers = sum(w != "scheduler" for w in waiting)
            parts = ["the scheduler"] if "scheduler" in waiting else []
            parts += [f"{workers} worker{plural(workers)}"] if workers else []
            need = "needs" if len(waiting) == 1 else "need"
            head += f"; {' and '.join(parts)} {need} a restart"
        head += f"; {len(self.remaining)} difference(s) remain" if self.remaining else ""
        return f"{head} in {self.seconds:.1f} s"

    def text(self) -> str:
        lines = [r.line() for r in self.runs] + [r.line() for r in self.restarts]
        return "\n".join([*lines, self.summary])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["remaining"] = [{**asdict(r), "by_worker": dict(r.by_worker)} for r in self.remaining]
        data["ok"] = self.ok
        return data


@dataclass(frozen=True)
class VersionRow:
    """One line of the parity table: what each side has, how bad a difference is, what to do."""

    package: str
    kind: Literal["python", "platform", "probe", "package", "optional", "code", "joined", "loaded"]
    client: str
    scheduler: str
    workers: str  # grouped: "7 workers: 2.1.0; 2.0.0 on tcp://10.0.0.7:4000"
    severity: Severity = "ok"
    suggestion: str = ""
    by_worker: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def label(self) -> str:
        named = self.kind in ("code", "optional", "joined", "loaded")
        return f"{self.package} ({self.kind})" if named else self.package


@dataclass(frozen=True)
class ParityReport(Shown):
    """What ``shipit.check`` found. ``ok`` is False when any row is at error level."""

    rows: tuple[VersionRow, ...]
    scheduler: str = ""
    workers: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def errors(self) -> tuple[VersionRow, ...]:
        return tuple(r for r in self.rows if r.severity == "error")

    @property
    def warnings(self) -> tuple[VersionRow, ...]:
        return tuple(r for r in self.rows if r.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def summary(self) -> str:
        n = len(self.workers)
        return (
            f"compared {len(self.rows)} rows across the client, the scheduler and "
            f"{n} worker{plural(n)}: "
            f"{len(self.errors)} error{plural(len(self.errors))}, "
            f"{len(self.warnings)} warning{plural(len(self.warnings))}"
        )

    def text(self) -> str:
        return "\n".join(filter(None, [self.table(), self.summary]))

    def table(self, everything: bool = False) -> str:
        """The rows as aligned text: the differences only, unless ``everything``."""
        rows = [r for r in self.rows if everything or r.severity != "ok"]
        return format_table(rows)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [{**asdict(r), "by_worker": dict(r.by_worker)} for r in self.rows]
        data["ok"] = self.ok
        return data


def format_table(rows: Collection[VersionRow]) -> str:
    """Aligned columns: package, client, scheduler, workers, severity, suggestion."""
    if not rows:
        return ""
    header = ("package", "client", "scheduler", "workers", "severity", "suggestion")
    lines = [header] + [
        (r.label, r.client, r.scheduler, r.workers, r.severity, r.suggestion) for r in rows
    ]
    return "\n".join(aligned(lines))


EventKind = Literal[
    "cluster",
    "ready",
    "shipped",
    "installed",
    "syntax-error",
    "failed",
    "error",
    "disconnected",
    "reconnected",
    "caught-up",
    "stopped",
]


@dataclass(frozen=True)
class WatchEvent:
    """One thing that happened in a watch; ``str()`` gives the line the CLI prints."""

    kind: EventKind
    detail: str = ""
    report: SyncReport | None = None
    latency_ms: float | None = None
    problems: tuple[SyntaxProblem, ...] = field(default=())

    def __str__(self) -> str:
        if self.kind in ("shipped", "ready") and self.report is not None:
            r = self.report
            names = ", ".join(u.name for u in r.units if u.status in ("shipped", "removed"))
            if not names:  # the cluster held this code already
                held = ", ".join(u.name for u in r.units) or "nothing to ship"
                return f"{self.kind}  {held}  {r.where_current}"
            sent = sum(u.bytes_sent for u in r.units)
            took = f" in {self.latency_ms:.0f} ms" if self.latency_ms is not None else ""
            head = "ready" if self.kind == "ready" else "shipped"
            return f"{head}  {names}  {sent:,} B  {r.confirmed}/{len(r.nodes)} nodes{took}"
        if self.kind == "installed" or (self.kind == "failed" and self.report is None):
            return self.detail  # an install's own line: "installed  numpy==2.1.0  on ..."
        if self.kind == "syntax-error":
            return "not shipped  " + "; ".join(str(p) for p in self.problems)
        if self.kind == "failed" and self.report is not None:
            return "failed  " + "; ".join(f"{a}: {e}" for a, e in self.report.failures.items())
        return f"{self.kind}  {self.detail}".rstrip()
