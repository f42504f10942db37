"""shipit: make the edit-run loop on a Dask cluster feel local.

>>> import shipit
>>> shipit.sync(client)            # ship the project in the current folder, install what
...                                # workers lack at the client's versions
"""

from .doctor import DoctorReport, Finding, doctor
from .errors import (
    BadAddress,
    BadFile,
    ConfigError,
    ConnectionFailed,
    ConnectionLost,
    NoSchedulerError,
    NothingToShip,
    PackError,
    ProbeTimeout,
    PushFailed,
    ShipitError,
    SyntaxProblem,
    TooLarge,
    UsageError,
    VersionMismatch,
)
from .guard import Guard, guard
from .install import InstallFailed, install
from .parity import check
from .report import (
    EnvironmentInstall,
    InstallReport,
    NodeResult,
    ParityReport,
    SyncReport,
    UnitResult,
    WorkerRestart,
)
from .requirements import BadPipOption, BadRequirement, PipOptions
from .run import RunReport, run
from .ship import Plan, plan, sync
from .status import ClusterStatus, NodeStatus, status
from .watch import Watch, WatchEvent, watch
from .wheels import BuildFailed, DownloadFailed

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
    "guard",
    "install",
    "plan",
    "run",
    "status",
    "sync",
    "watch",
]
