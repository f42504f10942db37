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
from .install.installer import InstallFailed, install
from .install.requirements import BadPipOption, BadRequirement, PipOptions
from .install.wheels import BuildFailed, DownloadFailed
from .parity.check import check
from .parity.guard import Guard, guard
from .report import (
    EnvironmentInstall,
    InstallReport,
    NodeResult,
    ParityReport,
    SyncReport,
    UnitResult,
    WorkerRestart,
)
from .run import RunReport, run
from .shipper import Plan, plan, sync
from .status import ClusterStatus, NodeStatus, status
from .watch import Watch, WatchEvent, watch

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
