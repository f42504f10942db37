"""Every error shipit raises on purpose, in one family. Each builds its message from its
fields and says what to do next (``tip``: a class attribute, or the ``tip`` keyword).

The command line exits with ``exit_code``: **1** shipit found a problem, **2** it could not
do its job (usage, configuration, connection). Real bugs are not in this tree: they keep
their traceback.

* ShipitError                          exit 1
  + UsageError                         exit 2: the call itself is wrong
    - ConfigError                      [tool.shipit] or pyproject.toml
    - BadFile                          a file that cannot ship as it is
    - NothingToShip
    - InsidePackage                    run from inside a package folder
    - ShadowsNodeModule                a unit named like the stdlib or Dask's stack
    - CompiledUnit                     extension modules that would ship as source
    - TooLarge                         over max-unit-size: nothing was sent
    - NoSchedulerError
    - BadRequirement                   cannot become name==version
    - BadPipOption
  + ConnectionFailed                   exit 2: the scheduler cannot be reached
    - BadAddress                       malformed: nothing was tried
  + ConnectionLost                     exit 2: it went away mid-command
  + ProbeTimeout                       exit 2: the cluster did not answer in time
  + PackError                          exit 1: syntax errors; not shipped
  + StaleFile                          exit 1: a file kept changing while it was read
  + NeverSettled                       exit 1: files kept changing for the whole sync
  + PushRefused                        exit 1: the scheduler would not take the push
  + PushFailed                         exit 1: some nodes did not take the code
  + VersionMismatch                    exit 1: the versions differ at error level
  + InstallFailed                      exit 1: pip, a restart, or what remains after
  + BuildFailed                        exit 1: no wheel of a local project
  + DownloadFailed                     exit 1: no wheels for the workers' platform
  + CannotGuard                        exit 1: this distributed cannot be guarded
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .text import shown_path, size_text

if TYPE_CHECKING:
    from .report import InstallReport, ParityReport, SyntaxProblem


class ShipitError(Exception):
    """Base class of every error shipit raises on purpose."""

    exit_code = 1
    tip: str | None = None

    def __init__(self, *args: object, tip: str | None = None) -> None:
        super().__init__(*args)
        if tip is not None:
            self.tip = tip


# -- exit 2: the call is wrong ------------------------------------------------------------


class UsageError(ShipitError):
    """The call itself is wrong: a bad path, option or configuration value."""

    exit_code = 2


class ConfigError(UsageError):
    """``[tool.shipit]`` in pyproject.toml holds something shipit cannot use."""


class BadFile(UsageError):
    """A file discovery or packing cannot ship: a broken link, a link out of the project,
    a name that is not UTF-8, a file it cannot read."""

    tip = "fix or remove it, or leave it out with [tool.shipit] exclude in pyproject.toml"

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fsdecode(path)
        self.reason = reason
        super().__init__(f"cannot ship {shown_path(self.path)}: {reason}")


class NothingToShip(UsageError):
    """The project folder holds no package or module to ship."""

    tip = "run shipit in your project's folder, or name folders with [tool.shipit] include"

    def __init__(
        self, root: str | os.PathLike[str], source_roots: Sequence[str], tip: str | None = None
    ) -> None:
        self.root = os.fsdecode(root)
        where = " or ".join(source_roots)
        super().__init__(
            f"nothing to ship in {self.root}: no package (a folder with __init__.py) "
            f"or module (a .py file) in {where}",
            tip=tip,
        )


class InsidePackage(UsageError):
    """The project folder is itself a package folder: its modules would ship as top-level
    units (``rich/json``, ``rich/logging.py`` as ``json`` and ``logging``)."""

    def __init__(self, folder: str | os.PathLike[str], run_from: str | os.PathLike[str]) -> None:
        self.folder, self.run_from = os.fsdecode(folder), os.fsdecode(run_from)
        super().__init__(
            f"{shown_path(self.folder)} is a package folder (it holds __init__.py): "
            "its modules would ship as top-level modules",
            tip=f"run shipit from {self.run_from} (cd {os.path.relpath(self.run_from)})",
        )


class ShadowsNodeModule(UsageError):
    """Units that would replace, on every node, a module the node itself needs: nothing was
    sent. ``units`` pairs each unit's name and first file with what it would replace."""

    tip = "rename it, or leave it out with [tool.shipit] exclude in pyproject.toml"

    def __init__(self, units: Sequence[tuple[str, str, str]]) -> None:
        self.units = tuple(units)
        named = "; ".join(
            f"{name} ({shown_path(path)}) would replace {what}" for name, path, what in self.units
        )
        super().__init__(f"refused, nothing was sent: {named} on every node")


class CompiledUnit(UsageError):
    """Units with compiled parts that would ship as source: nothing was sent. ``units`` holds
    (name, origin, the compiled files and extension sources)."""

    def __init__(self, units: Sequence[tuple[str, str, Sequence[str]]]) -> None:
        self.units = tuple((name, origin, tuple(files)) for name, origin, files in units)
        named = "; ".join(
            f"{name} ({', '.join(files[:4])}{', …' if len(files) > 4 else ''})"
            for name, _, files in self.units
        )
        sibling = next((o[9:] for _, o, _ in self.units if o.startswith("editable:")), None)
        option = f'build-wheels = ["{sibling}"]' if sibling else "install-project = true"
        super().__init__(
            f"refused, nothing was sent: compiled parts in {named}; shipped as source they "
            "would hide the compiled copy installed on the nodes",
            tip=f"set [tool.shipit] {option} to build it into a wheel and install that on "
            "nodes of this Python and platform, or leave the files out with exclude",
        )


class TooLarge(UsageError):
    """Units over ``[tool.shipit] max-unit-size``, largest first: nothing was sent."""

    tip = "leave large files out with [tool.shipit] exclude, or raise max-unit-size"

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
            + (f"; largest files: {files}" if files else "")
        )


class NoSchedulerError(UsageError):
    tip = "pass --scheduler tcp://HOST:8786 or set DASK_SCHEDULER_ADDRESS"

    def __init__(self) -> None:
        super().__init__("no scheduler given")


class BadRequirement(UsageError):
    """A name or version that cannot become a ``name==version`` requirement."""

    def __init__(self, name: str, version: str, reason: str) -> None:
        self.name, self.version, self.reason = name, version, reason
        super().__init__(f"cannot install {name!r} version {version!r}: {reason}")


class BadPipOption(UsageError):
    """An index, find-links or other pip option value shipit will not pass on."""

    def __init__(self, option: str, value: str, reason: str) -> None:
        self.option, self.value = option, value
        super().__init__(f"{option} {value!r}: {reason}")


# -- exit 2: the cluster cannot be reached ------------------------------------------------


class ConnectionFailed(ShipitError):
    exit_code = 2
    tip = "is `dask scheduler` running there, and is the port open from this machine?"

    def __init__(self, address: str, reason: str, timeout: float, tip: str | None = None) -> None:
        self.address = address
        self.reason = reason
        self.timeout = timeout
        message = f"cannot reach the scheduler at {address} within {timeout:g} s: {reason}"
        super().__init__(message, tip=tip)


class ConnectionRefused(ConnectionFailed):
    """Nothing listens at the scheduler's address: said at once, not after the timeout."""

    tip = "start it with `dask scheduler`, or give the address it prints"

    def __init__(self, address: str, timeout: float) -> None:
        self.address, self.reason, self.timeout = address, "connection refused", timeout
        ShipitError.__init__(self, f"connection refused: is the scheduler running at {address}?")


class BadAddress(ConnectionFailed):
    """A scheduler address that cannot name a scheduler: nothing was tried."""

    tip = "write it as tcp://HOST:PORT, or tls://HOST:PORT with Dask's TLS settings"

    def __init__(self, address: str, reason: str) -> None:
        self.address, self.reason, self.timeout = address, reason, 0.0
        ShipitError.__init__(self, f"malformed scheduler address {address!r}: {reason}")


class ConnectionLost(ShipitError):
    """The scheduler went away in the middle of a command."""

    exit_code = 2
    tip = (
        "is the scheduler still running? run the command again once it is back; "
        "each node holds its last good code or the new version whole"
    )

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"lost the connection to the scheduler at {address}: {reason}")


class ProbeTimeout(ShipitError):
    """The scheduler or a worker did not answer the version probe in time."""

    exit_code = 2
    tip = "a worker may be busy holding the GIL; try again with a longer --timeout"

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"the cluster did not answer the version probe within {timeout:g} s")


# -- exit 1: shipit found a problem -------------------------------------------------------


class PackError(ShipitError):
    """Some units do not compile: not shipped; the cluster keeps their last good code."""

    tip = "fix the file and sync again; the cluster keeps its last good code"

    def __init__(self, problems: Sequence[SyntaxProblem]) -> None:
        self.problems = tuple(problems)
        lines = "; ".join(str(p) for p in self.problems)
        super().__init__(f"syntax error, not shipped: {lines}")


class StaleFile(ShipitError):
    """A file changed between hashing and reading; the caller packs the unit again, and
    reports it once the file kept changing."""

    tip = "something is still writing it: sync again once it holds still"

    def __init__(self, path: Path) -> None:
        super().__init__(f"{shown_path(path)} kept changing while it was being shipped")
        self.path = path


class NeverSettled(ShipitError):
    """The project's files kept changing through every attempt of one sync."""

    def __init__(self) -> None:
        super().__init__("files kept changing during the sync; try again when they settle")


class PushRefused(ShipitError):
    """The scheduler would not take the push: a path or name nodes must not write, or it
    kept asking for files (another client pushing the same units)."""


class PushFailed(ShipitError):
    """Some nodes did not confirm the new code. ``failures`` maps node address to its error."""

    def __init__(self, failures: Mapping[str, str], report: object = None) -> None:
        self.failures = dict(failures)
        self.report = report
        named = "; ".join(f"{node}: {error}" for node, error in sorted(self.failures.items()))
        super().__init__(f"{len(self.failures)} node(s) did not take the new code: {named}")


class VersionMismatch(ShipitError):
    """The client, the scheduler and the workers differ at error level; ``report`` has every row."""

    tip = "fix the rows marked error, or relax them with [tool.shipit] severity or ignore"

    def __init__(self, report: ParityReport) -> None:
        self.report = report
        super().__init__(f"{report.summary}\n{report.table()}")


class InstallFailed(ShipitError):
    """pip failed on some nodes, a restart failed, or differences remain after the install."""

    tip = "the nodes that could install did; fix what is named and sync again"

    def __init__(self, report: InstallReport) -> None:
        self.report = report
        problems = [f"{r.where}: {r.error}" for r in report.failed]
        problems += [
            f"restart of {r.worker}: {r.detail or r.status}"
            for r in report.restarts
            if r.status in ("failed", "no nanny")
        ]
        problems += [f"{r.label}: {r.suggestion}" for r in report.remaining]
        super().__init__("install incomplete: " + "; ".join(problems))


class BuildFailed(ShipitError):
    """``build`` could not make a wheel of a local project."""

    def __init__(self, folder: Path, reason: str) -> None:
        self.folder, self.reason = folder, reason
        super().__init__(
            f"cannot build a wheel of {folder}: {reason}",
            tip=f"run `python -m build --wheel {folder}` to see the whole error",
        )


class DownloadFailed(ShipitError):
    """``pip download`` could not fetch wheels for the workers' Python and platform."""

    def __init__(self, requirements: Sequence[str], target: str, reason: str) -> None:
        self.requirements, self.target, self.reason = tuple(requirements), target, reason
        wanted = " ".join(self.requirements)
        super().__init__(f"the client could not fetch wheels of {wanted} for {target}: {reason}")


class CannotGuard(ShipitError):
    """This version of distributed has no single method that sends a graph to wrap."""
