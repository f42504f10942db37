"""The cluster shipit starts itself when no scheduler is given: a LocalCluster on this machine.

``shipit watch`` keeps one for as long as it watches; ``shipit run`` for one script's run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import signal
import threading

from distributed import Client, LocalCluster


class EmbeddedCluster:
    """A LocalCluster of process workers and a client of it; :meth:`close` ends both."""

    def __init__(self, n_workers: int | None = None) -> None:
        # The dashboard needs bokeh; without it Dask serves nothing there, so say so.
        has_bokeh = importlib.util.find_spec("bokeh") is not None
        # Worker processes start ignoring Ctrl-C: a terminal signals its whole process group,
        # and shipit, not each worker, decides how the cluster ends. (Only the main thread
        # may change a disposition; a watch's own thread starts workers as Dask does.)
        quiet = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if quiet else None
        try:
            self.cluster = LocalCluster(
                n_workers=n_workers,
                processes=True,
                threads_per_worker=1 if n_workers else None,
                dashboard_address=":8787" if has_bokeh else ":0",
            )
        finally:
            if quiet:
                signal.signal(signal.SIGINT, previous)
        try:
            self.client = Client(self.cluster, set_as_default=False)
        except BaseException:
            self.cluster.close(timeout=10)
            raise
        dashboard = self.cluster.dashboard_link if has_bokeh else "none (pip install bokeh)"
        self.description = (
            f"started a local cluster at {self.address} with {len(self.cluster.workers)} "
            f"workers; dashboard: {dashboard}"
        )

    @property
    def address(self) -> str:
        return str(self.cluster.scheduler_address)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)
        with contextlib.suppress(Exception):
            self.cluster.close(timeout=10)
