"""shipit: make the edit-run loop on a Dask cluster feel local.

>>> import shipit
>>> shipit.sync(client)            # ship the project in the current folder, install what
...                                # workers lack at the client's versions
"""

from .errors import (
    BadAddress,
    BadFile,
    ConfigError,
    ConnectionFailed,
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
from .ship import Plan, plan, sync
from .watch import Watch, WatchEvent, watch
from .wheels import BuildFailed, DownloadFailed

__all__ = [
    "BadAddress",
    "BadFile",
    "BadPipOption",
    "BadRequirement",
    "BuildFailed",
    "ConfigError",
    "ConnectionFailed",
    "DownloadFailed",
    "EnvironmentInstall",
    "Guard",
    "InstallFailed",
    "InstallReport",
    "NoSchedulerError",
    "NodeResult",
    "NothingToShip",
    "PackError",
    "ParityReport",
    "PipOptions",
    "Plan",
    "ProbeTimeout",
    "PushFailed",
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
    "guard",
    "install",
    "plan",
    "sync",
    "watch",
]
