"""shipit: make the edit-run loop on a Dask cluster feel local.

The names below (``__all__``) are the public API. The modules behind them are internal:
import from ``shipit``, not from ``shipit.sync`` or ``shipit.project.pack``, which may move.

Example::

    import shipit
    shipit.sync(client)   # ship the project in the current folder, install what the
                          # workers lack at the client's versions
"""

from .config import PipOptions
from .doctor import DoctorReport, Finding, doctor
from .errors import (
    BadAddress,
    BadFile,
    BadPipOption,
    BadRequirement,
    BuildFailed,
    ConfigError,
    ConnectionFailed,
    ConnectionLost,
    DownloadFailed,
    InstallFailed,
    NoSchedulerError,
    NothingToShip,
    PackError,
    ProbeTimeout,
    PushFailed,
    ShipitError,
    TooLarge,
    UsageError,
    VersionMismatch,
)
from .install.installer import install
from .parity.check import check
from .parity.guard import Guard, guard
from .project.plan import Plan, plan
from .report import (
    EnvironmentInstall,
    InstallReport,
    NodeResult,
    ParityReport,
    SyncReport,
    SyntaxProblem,
    UnitResult,
    WorkerRestart,
)
from .run import RunReport, run
from .status import ClusterStatus, NodeStatus, status
from .sync import forget, sync
from .watch import Watch, WatchEvent, watch


def load_ipython_extension(shell: object) -> None:
    """``%load_ext shipit`` in IPython or Jupyter (see :mod:`shipit.notebook`)."""
    from .notebook import load_ipython_extension as load

    load(shell)


def unload_ipython_extension(shell: object) -> None:
    from .notebook import unload_ipython_extension as unload

    unload(shell)


__all__ = [
    "BadAddress",
    "BadFile",
    "BadPipOption",
    "BadRequirement",
    "BuildFailed",
    "ClusterStatus",
    "ConfigError",
    "ConnectionFailed",
    "ConnectionLost",
    "DoctorReport",
    "DownloadFailed",
    "EnvironmentInstall",
    "Finding",
    "Guard",
    "InstallFailed",
    "InstallReport",
    "NoSchedulerError",
    "NodeResult",
    "NodeStatus",
    "NothingToShip",
    "PackError",
    "ParityReport",
    "PipOptions",
    "Plan",
    "ProbeTimeout",
    "PushFailed",
    "RunReport",
    "ShipitError",
    "SyncReport",
    "SyntaxProblem",
    "TooLarge",
    "UnitResult",
    "UsageError",
    "VersionMismatch",
    "Watch",
    "WatchEvent",
    "WorkerRestart",
    "check",
    "doctor",
    "forget",
    "guard",
    "install",
    "plan",
    "run",
    "status",
    "sync",
    "watch",
]


def __dir__() -> list[str]:
    return __all__
