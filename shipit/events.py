"""What happens after a sync, for whoever must hear it: the parity guards of this process.

A guard registers with :func:`after_sync`; :class:`shipit.shipper.Shipper` and the install
call :func:`synced` once the cluster runs new code, and each guard checks parity again
before its next submission. Registered objects are held weakly: a closed guard goes away.
"""

from __future__ import annotations

import weakref
from typing import Protocol


class Listener(Protocol):
    def invalidate(self, project: bool = False) -> None: ...


_after_sync: weakref.WeakSet[Listener] = weakref.WeakSet()


def synced() -> None:
    """Tell every guard that code changed on the cluster; ``Shipper.push`` calls this."""
    for listener in list(_after_sync):
        listener.invalidate(project=True)


def after_sync(listener: Listener) -> None:
    """Register an object whose ``invalidate(project=True)`` runs after every sync."""
    _after_sync.add(listener)
