"""Results are values: what a sync shipped and what each node said; what a parity check found."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .errors import SyntaxProblem

UnitStatus = Literal["shipped", "unchanged", "removed", "not shipped"]
Severity = Literal["ok", "warning", "error"]


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
class SyncReport:
    """What a sync did. ``ok`` is False when a unit did not compile or a node failed."""

    units: tuple[UnitResult, ...]
    nodes: tuple[NodeResult, ...] = ()
    problems: tuple[SyntaxProblem, ...] = ()
    seconds: float = 0.0
    generation: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems and all(n.ok for n in self.nodes)

    @property
    def shipped(self) -> tuple[UnitResult, ...]:
        return tuple(u for u in self.units if u.status == "shipped")

    @property
    def failures(self) -> dict[str, str]:
        return {n.address: n.error for n in self.nodes if n.error is not None}

    @property
    def confirmed(self) -> int:
        return sum(n.ok for n in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["problems"] = [str(p) for p in self.problems]
        return data


@dataclass(frozen=True)
class VersionRow:
    """One line of the parity table: what each side has, how bad a difference is, what to do."""

    package: str
    kind: Literal["python", "platform", "probe", "package", "code"]
    client: str
    scheduler: str
    workers: str  # grouped: "7 workers: 2.1.0; 2.0.0 on tcp://10.0.0.7:4000"
    severity: Severity = "ok"
    suggestion: str = ""
    by_worker: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def label(self) -> str:
        return f"{self.package} (code)" if self.kind == "code" else self.package


@dataclass(frozen=True)
class ParityReport:
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
            f"{n} worker{_plural(n)}: "
            f"{len(self.errors)} error{_plural(len(self.errors))}, "
            f"{len(self.warnings)} warning{_plural(len(self.warnings))}"
        )

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
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(
            [*(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)), line[-1]]
        ).rstrip()
        for line in lines
    )


def _plural(n: int) -> str:
    return "" if n == 1 else "s"
