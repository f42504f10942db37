"""Installs under ``shipit watch``: a save whose code needs another distribution installs it.

The watch ships each save at once; after the push it hands the plan here. What the nodes
need is the parity check's list of wanted distributions: only when that list changed since
the last install that went through (a new import, a saved ``pyproject.toml``), or the last
one failed, does an install run, in a thread of its own, so later saves keep shipping
meanwhile. A save that changes nothing about requirements costs a set comparison: no pip,
no probe of the nodes. Installs never overlap; one asked for during another runs after it,
with the newest plan.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from distributed import Client

from ..config import Options
from ..parity.check import Parity
from ..project.plan import Plan
from ..report import InstallReport
from .installer import Installer

logger = logging.getLogger(__name__)


def requirements_key(the_plan: Plan) -> Hashable:
    """What the nodes must hold for this plan, as far as an install is concerned."""
    check = Parity(plan=the_plan)
    return frozenset(check.wanted.items()), frozenset(check.optional)


class LiveInstalls:
    """The installs of one watch. ``options`` of None: the watch installs nothing."""

    def __init__(
        self,
        options: Callable[[Plan], Options] | None,
        on_line: Callable[[str, str], None],
        restart: bool = False,
    ) -> None:
        """``options`` makes the install's options from a plan's config (read again when
        ``pyproject.toml`` changes); ``on_line(kind, line)`` hears each outcome, ``kind``
        "installed" or "failed"."""
        self.options, self.on_line, self.restart = options, on_line, restart
        self._done: Hashable | None = None  # the requirements of the last install that held
        self._wanted: tuple[Client, Plan, Hashable] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._joined: dict[str, tuple[Any, ...]] = {}  # each joining worker's install, told

    def joined(self, state: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(kind, line) for each worker that joined and installed the cluster's requirements,
        or could not, since last asked (``state`` is the scheduler agent's; it keeps each
        worker's last word)."""
        lines = []
        for address, r in sorted((state.get("packages") or {}).items()):
            said = (r.get("state"), tuple(r.get("installed") or ()), r.get("error"))
            if self._joined.get(address) == said or said[0] == "installing":
                continue
            self._joined[address] = said
            if said[0] == "failed":
                lacking = " ".join(r.get("lacking") or ())
                lines.append(("failed", f"failed     {lacking}  on {address} (joined): {said[2]}"))
            elif said[1]:
                took = f"{float(r.get('seconds') or 0):.1f} s"
                lines.append(
                    ("installed", f"installed  {' '.join(said[1])}  on {address} (joined)  {took}")
                )
        return lines

    def after_push(self, client: Client, the_plan: Plan, *, again: bool = False) -> None:
        """The nodes hold ``the_plan``'s code: install what it needs, if that changed since
        the last install (``again``: whatever it was, as after a new scheduler)."""
        if self.options is None or self._stopped:
            return
        key = requirements_key(the_plan)
        with self._lock:
            if key == self._done and not again:
                return
            if again:
                self._done = None
            self._wanted = (client, the_plan, key)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="shipit-watch-install", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        """Ask for no more installs; one under way finishes on its own (pip on a node cannot
        be called back), and is heard of no more."""
        self._stopped = True

    def _work(self) -> None:
        while True:
            with self._lock:
                if self._wanted is None or self._stopped:
                    self._thread = None
                    return
                client, the_plan, key = self._wanted
                self._wanted = None
            assert self.options is not None
            try:
                installer = Installer(client, self.options(the_plan), the_plan)
                report = installer.run(restart=self.restart)
            except Exception as e:  # a wheel would not build, a node did not answer: say, go on
                if self._stopped or client.status != "running":
                    # The scheduler went: the watch says so, and installs again once back.
                    logger.info("install given up: %s: %s", type(e).__name__, e)
                else:
                    self.on_line("failed", f"failed     install: {type(e).__name__}: {e}")
                continue
            if self._stopped:
                return
            with self._lock:
                self._done = key if report.ok else None  # failed: the next save tries again
            self._tell(report)

    def _tell(self, report: InstallReport) -> None:
        for run in report.runs:
            if run.status in ("installed", "failed"):
                self.on_line("installed" if run.ok else "failed", run.line())
        for restart in report.restarts:
            failed = restart.status in ("failed", "no nanny")
            self.on_line("failed" if failed else "installed", restart.line())
        for row in report.remaining:
            self.on_line("failed", f"differs    {row.label}: {row.suggestion}")
