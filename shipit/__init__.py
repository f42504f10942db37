"""shipit: make the edit-run loop on a Dask cluster feel local.

>>> import shipit
>>> shipit.sync(client)            # ship the project in the current folder
"""

from .errors import (
    ConfigError,
    ConnectionFailed,
    NoSchedulerError,
    PackError,
    PushFailed,
    ShipitError,
    SyntaxProblem,
    UsageError,
)
from .report import NodeResult, SyncReport, UnitResult
from .ship import Plan, plan, sync
from .watch import Watch, WatchEvent, watch

__all__ = [
    "ConfigError",
    "ConnectionFailed",
    "NoSchedulerError",
    "NodeResult",
    "PackError",
    "Plan",
    "PushFailed",
    "ShipitError",
    "SyncReport",
    "SyntaxProblem",
    "UnitResult",
    "UsageError",
    "Watch",
    "WatchEvent",
    "plan",
    "sync",
    "watch",
]
