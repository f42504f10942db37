"""The command line's status line: one line on a terminal's stderr, nothing in a pipe."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable


class Progress:
    """One status line on a terminal's stderr, rewritten per step and erased at the end;
    nothing at all when stderr is not a terminal (logs, CI, pipes). The time ticks while a
    step runs, so a long pip install shows it is alive."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.started = time.monotonic()
        self.step: str | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, step: str) -> None:
        if self.live:
            self.step = step
            self._draw()
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, daemon=True)
                self._ticker.start()

    def _tick(self) -> None:
        while not self._done.wait(0.5):
            self._draw()

    def _draw(self) -> None:
        with self._lock:
            if self.live and self.step is not None:
                elapsed = time.monotonic() - self.started
                sys.stderr.write(f"\r\x1b[K{self.step}... ({elapsed:.1f} s)")
                sys.stderr.flush()

    def above(self, show: Callable[[], None]) -> None:
        """Print something (``show`` prints it) above the status line, which stays."""
        with self._lock:
            if self.live and self.step is not None:
                sys.stderr.write("\r\x1b[K")
            show()
        self._draw()

    def close(self) -> None:
        """Erase the line; draw nothing more."""
        self._done.set()
        with self._lock:
            if self.live and self.step is not None:
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()
            self.live = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
