"""shipit: make the edit-run loop on a Dask cluster feel local.

>>> import shipit
>>> shipit.sync(client)            # ship the project in the current folder, install what
...                                # workers lack at the client's versions
"""

from .errors import (
    ConfigError,
    ConnectionFailed,
    ConnectionLost,
    NoSchedulerError,
    PackError,
    ProbeTimeout,
    PushFailed,
    ShipitError,
    SyntaxProblem,
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
    "BadPipOption",
    "BadRequirement",
    "BuildFailed",
    "ConfigError",
    "ConnectionFailed",
    "ConnectionLost",
    "DownloadFailed",
    "EnvironmentInstall",
    "Guard",
    "InstallFailed",
    "InstallReport",
    "NoSchedulerError",
    "NodeResult",
    "PackError",
    "ParityReport",
    "PipOptions",
    "Plan",
    "ProbeTimeout",
    "PushFailed",
    "ShipitError",
    "SyncReport",
    "SyntaxProblem",
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
