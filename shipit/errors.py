"""One family of errors. Each builds its message from its fields and says what to do next.

The CLI maps ``exit_code`` to the process exit status: 1 means shipit found a problem
(a failed push, a mismatch), 2 means it could not do its job (usage, configuration,
connection).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report import ParityReport


class ShipitError(Exception):
    """Base class of every error shipit raises on purpose."""

    exit_code = 1
    tip: str | None = None


class UsageError(ShipitError):
    """The call itself is wrong: a bad path, option or configuration value."""

    exit_code = 2

    def __init__(self, message: str, tip: str | None = None) -> None:
        super().__init__(message)
        self.tip = tip


class ConfigError(UsageError):
    """``[tool.shipit]`` in pyproject.toml holds something shipit cannot use."""


class NoSchedulerError(UsageError):
    def __init__(self) -> None:
        super().__init__(
            "no scheduler given",
            tip="pass --scheduler tcp://HOST:8786 or set DASK_SCHEDULER_ADDRESS",
        )


class ConnectionFailed(ShipitError):
    exit_code = 2

    def __init__(self, address: str, reason: str, timeout: float) -> None:
        self.address = address
        self.reason = reason
        self.timeout = timeout
        super().__init__(f"cannot reach the scheduler at {address} within {timeout:g} s: {reason}")
        self.tip = "is `dask scheduler` running there, and is the port open from this machine?"


class ConnectionLost(ShipitError):
    """The scheduler went away in the middle of a command."""

    exit_code = 2

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"lost the connection to the scheduler at {address}: {reason}")
        self.tip = (
            "is the scheduler still running? run the command again once it is back; "
            "each node holds its last good code or the new version whole"
        )


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


class PackError(ShipitError):
    """Some units do not compile: not shipped; the cluster keeps their last good code."""

    def __init__(self, problems: Sequence[SyntaxProblem]) -> None:
        self.problems = tuple(problems)
        lines = "; ".join(str(p) for p in self.problems)
        super().__init__(f"syntax error, not shipped: {lines}")
        self.tip = "fix the file and sync again; the cluster keeps its last good code"


class PushFailed(ShipitError):
    """Some nodes did not confirm the new code. ``failures`` maps node address to its error."""

    def __init__(self, failures: Mapping[str, str], report: object = None) -> None:
        self.failures = dict(failures)
        self.report = report
        named = "; ".join(f"{node}: {error}" for node, error in sorted(self.failures.items()))
        super().__init__(f"{len(self.failures)} node(s) did not take the new code: {named}")


class VersionMismatch(ShipitError):
    """The client, the scheduler and the workers differ at error level; ``report`` has every row."""

    def __init__(self, report: ParityReport) -> None:
        self.report = report
        super().__init__(f"{report.summary}\n{report.table()}")
        self.tip = "fix the rows marked error, or relax them with [tool.shipit] severity or ignore"


class ProbeTimeout(ShipitError):
    """The scheduler or a worker did not answer the version probe in time."""

    exit_code = 2

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"the cluster did not answer the version probe within {timeout:g} s")
        self.tip = "a worker may be busy holding the GIL; try again with a longer --timeout"
