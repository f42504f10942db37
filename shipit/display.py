"""A watch's one status area in a notebook: updated in place, an error shown until fixed.

IPython is imported only when an area is made, inside a kernel.
"""

from __future__ import annotations

import html
import sys
import threading
from pathlib import Path
from typing import Any

from .report import WatchEvent


def in_a_kernel() -> bool:
    """True inside a Jupyter kernel (IPython's ZMQ shell), where a display area shows."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class StatusArea:
    """One output area, updated in place: what a watch last did, and an error until fixed."""

    def __init__(self, root: Path) -> None:
        from IPython.display import display

        self.root = root
        self.last = "starting"
        self.error: str | None = None
        self.state = "watching"
        self._lock = threading.Lock()
        self.handle = display(self, display_id=True)

    def __call__(self, event: WatchEvent) -> None:
        with self._lock:
            line = str(event)
            if event.kind in ("syntax-error", "failed", "error", "disconnected"):
                self.error = line
            elif event.kind == "stopped":
                self.state, self.last = "stopped", "stopped: later saves are not shipped"
            else:
                if event.kind in ("shipped", "ready", "reconnected"):
                    self.error = None  # a good save ships: whatever was wrong is over
                self.last = line
            if self.handle is not None:
                self.handle.update(self)

    def text(self) -> str:
        lines = [f"shipit {self.state}  {self.root}", f"last   {self.last}"]
        return "\n".join([*lines, f"error  {self.error}"] if self.error else lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def _repr_html_(self) -> str:
        colour = "#b00" if self.error else "#444"
        return f'<pre style="color:{colour}">{html.escape(self.text())}</pre>'
