"""shipit: make the edit-run loop on a Dask cluster feel local.

>>> import shipit
>>> shipit.sync(client)            # ship the project in the current folder
"""

from .errors import (
    ConfigError,
    ConnectionFailed,
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
from .parity import check
from .report import NodeResult, ParityReport, SyncReport, UnitResult
from .ship import Plan, plan, sync
from .watch import Watch, WatchEvent, watch

__all__ = [
    "ConfigError",
    "ConnectionFailed",
    "Guard",
    "NoSchedulerError",
    "NodeResult",
    "PackError",
    "ParityReport",
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
    "check",
    "guard",
    "plan",
    "sync",
    "watch",
]
