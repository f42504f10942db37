"""One family of errors. Each builds its message from its fields and says what to do next.

The CLI maps ``exit_code`` to the process exit status: 1 means shipit found a problem
(a failed push, a mismatch), 2 means it could not do its job (usage, configuration,
connection).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .text import size_text

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


class BadFile(UsageError):
    """A file discovery or packing cannot ship: a broken link, a link out of the project,
    a name that is not UTF-8, a file it cannot read."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fsdecode(path)
        self.reason = reason
        super().__init__(
            f"cannot ship {shown_path(self.path)}: {reason}",
            tip="fix or remove it, or leave it out with [tool.shipit] exclude in pyproject.toml",
        )


class NothingToShip(UsageError):
    """The project folder holds no package or module to ship."""

    def __init__(self, root: str | os.PathLike[str], source_roots: Sequence[str]) -> None:
        self.root = os.fsdecode(root)
        where = " or ".join(source_roots)
        super().__init__(
            f"nothing to ship in {self.root}: no package (a folder with __init__.py) "
            f"or module (a .py file) in {where}",
            tip="run shipit in your project's folder, or name folders with [tool.shipit] include",
        )


class TooLarge(UsageError):
    """Units over ``[tool.shipit] max-unit-size``, largest first: nothing was sent."""

    def __init__(
        self,
        units: Sequence[tuple[str, int]],
        limit: int,
        largest_files: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.units = tuple(units)
        self.limit = limit
        self.largest_files = tuple(largest_files)
        named = ", ".join(f"{name} ({size_text(size)})" for name, size in self.units)
        files = ", ".join(f"{path} ({size_text(size)})" for path, size in self.largest_files)
        super().__init__(
            f"too large to ship, nothing was sent: {named} over the {size_text(limit)} limit"
            + (f"; largest files: {files}" if files else ""),
            tip="leave large files out with [tool.shipit] exclude, or raise max-unit-size",
        )


def shown_path(path: str) -> str:
    """A path as the user would type it (relative to the current folder when inside it),
    safe to print: bytes that are not UTF-8 shown as \\xNN escapes."""
    cwd = os.getcwd()
    if path.startswith(cwd + os.sep):
        path = path[len(cwd) + 1 :]
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class NoSchedulerError(UsageError):
    def __init__(self) -> None:
        super().__init__(
            "no scheduler given",
            tip="pass --scheduler tcp://HOST:8786 or set DASK_SCHEDULER_ADDRESS",
        )


class ConnectionFailed(ShipitError):
    exit_code = 2

    def __init__(self, address: str, reason: str, timeout: float, tip: str | None = None) -> None:
        self.address = address
        self.reason = reason
        self.timeout = timeout
        super().__init__(f"cannot reach the scheduler at {address} within {timeout:g} s: {reason}")
        self.tip = (
            tip or "is `dask scheduler` running there, and is the port open from this machine?"
        )


class BadAddress(ConnectionFailed):
    """A scheduler address that cannot name a scheduler: nothing was tried."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(address, reason, 0)
        self.args = (f"malformed scheduler address {address!r}: {reason}",)
        self.tip = "write it as tcp://HOST:PORT, or tls://HOST:PORT with Dask's TLS settings"


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
