"""Results are values: what a sync shipped and what each node said."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .errors import SyntaxProblem

UnitStatus = Literal["shipped", "unchanged", "removed", "not shipped"]


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
