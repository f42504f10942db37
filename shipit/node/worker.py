"""shipit's worker plugin, registered under ``shipit`` on every worker: it installs the
``shipit_apply`` handler (scheduler -> worker) and catches the worker up with the scheduler's
current state when it starts, joins or missed a push. See ``plugins.py`` for the scheduler's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from . import joining
from .protocol import ERROR_KEY, PLUGIN_NAME, Payloads, check_unit, error_text
from .store import Refused, _manifest_of, node_store, off_the_loop

logger = logging.getLogger("distributed.shipit")


class ShipitWorkerPlugin(WorkerPlugin):
    """Installs the ``shipit_apply`` handler on a worker and catches it up with the scheduler."""

    name = PLUGIN_NAME

    def __init__(self, agent: str) -> None:
        self.agent = agent

    async def setup(self, worker: Any) -> None:
        self.worker = worker
        joined = getattr(worker, "_shipit_store", None) is None  # not a newer agent's plugin
        self.store = node_store(worker, "worker", running=self._running)
        worker.handlers["shipit_apply"] = self.apply
        try:
            state = await self.worker.scheduler.shipit_state()
            if joined and state and state.get("requirements"):
                # Packages before code: until they are in, this worker is not current.
                # Its start waits a while (tasks wait with it), then lets pip go on alone.
                install = asyncio.ensure_future(
                    joining.install_on_join(worker, state["requirements"])
                )
                with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                    await asyncio.wait_for(asyncio.shield(install), joining.JOIN_WAIT)
                self._install = install  # held: a task nobody holds may be collected
            await self.catch_up(state)
        except Refused as e:  # another Python than the client's: inert, and says why
            logger.warning("shipit: %s", e)

    def _running(self) -> set[str]:
        state = getattr(self.worker, "state", None)
        return {str(ts.key) for ts in getattr(state, "executing", ())}

    async def teardown(self, worker: Any) -> None:
        """A closing worker deletes its files; a plugin replaced by a newer agent keeps them
        (the store outlives the plugin, and live modules may still read their files)."""
        if getattr(worker.status, "name", "") in ("closing", "closing_gracefully", "closed"):
            await off_the_loop(self.store.remove)

    async def fetch(self, digests: list[str]) -> dict[str, bytes]:
        found = await self.worker.scheduler.shipit_fetch(digests=digests)
        lacking = set(digests) - set(found)
        if lacking:
            raise RuntimeError(f"the scheduler no longer holds {len(lacking)} file(s); sync again")
        return found

    async def catch_up(self, state: dict[str, Any] | None = None) -> None:
        """Take the scheduler's whole current state: what a joining or lagging worker needs."""
        if state is None:
            state = await self.worker.scheduler.shipit_state()
        if state is None:  # no scheduler plugin yet
            return
        changed: list[Any] = [{"name": n, **u} for n, u in state["units"].items()]
        await self.store.apply(
            state["epoch"], state["generation"], changed, [], {}, self.fetch, full=True
        )
        self._collect()

    def _collect(self) -> None:
        with contextlib.suppress(RuntimeError):  # no loop: the worker is closing
            running = self._running()
            asyncio.get_running_loop().run_in_executor(None, self.store.collect_garbage, running)

    async def apply(
        self,
        epoch: str,
        generation: int,
        base: int,
        changed: list[Any],
        removed: list[str],
        payloads: dict[str, bytes],
    ) -> dict[str, str]:
        """Returns the unit digests now live here, or {ERROR_KEY: why} (not an exception,
        which the RPC layer would wrap beyond recognition)."""
        try:
            for unit in changed:  # before anything, whoever sent it
                check_unit(unit, _manifest_of(self.store.units, unit))
            if (self.store.epoch, self.store.generation) != (epoch, base):
                await self.catch_up()  # missed a push (joined, failed, restarted, new scheduler)
                return self.store.digests()
            blobs = Payloads(payloads, {u["name"]: u["manifest"] for u in changed})
            digests = await self.store.apply(epoch, generation, changed, removed, blobs, self.fetch)
            self._collect()
            return digests
        except Refused as e:
            return {ERROR_KEY: str(e)}
        except Exception as e:
            logger.exception("shipit: could not apply generation %d", generation)
            return {ERROR_KEY: error_text(e)}
