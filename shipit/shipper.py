"""Shipping: the client side of a push.

A :class:`Shipper` holds one client and what it last saw of the cluster, so that a watch
session sends only the files that changed. :func:`shipit.sync` is the one-shot use of it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask.config
from distributed import Client

from . import agent, events
from .connection import is_loopback, warn_if_in_the_clear
from .errors import PushRefused, UsageError
from .node import plugins, protocol, worker
from .project.pack import Pack
from .report import NodeResult, SyncReport, SyntaxProblem, UnitResult

logger = logging.getLogger(__name__)

AGENT = agent.AGENT


def no_user_code_here() -> None:
    """Declare that this process runs none of the user's code (the shipit command): a node
    living in it (the scheduler of an embedded cluster) then switches its modules like any
    other node, for the user's script in another process to use."""
    dask.config.set({"shipit.switch-modules": True})


_BIG = 1_000_000  # bytes: below this, compressing or not makes no difference worth a look-up


def _all_on_loopback(client: Client) -> bool:
    """True when the scheduler and every worker the client knows of listen on loopback."""
    info = client.scheduler_info(n_workers=-1)
    addresses = [str(info.get("address", "")), *info.get("workers", {})]
    return all(is_loopback(address) for address in addresses)


def project_id(root: Path) -> str:
    """Names a project on the cluster, so a sync removes only its own vanished units."""
    return f"{socket.gethostname()}:{root}"


class Shipper:
    """Ships packs of one project into one cluster, remembering what the cluster holds."""

    def __init__(self, client: Client, root: Path, timeout: float = protocol.APPLY_TIMEOUT) -> None:
        self.client = client
        warn_if_in_the_clear(client.scheduler.address)
        self.project = project_id(root)
        self.timeout = timeout
        # What the scheduler holds (name -> digest, manifest); None until asked.
        self.remote: dict[str, dict[str, Any]] | None = None
        self.own: set[str] = set()  # the names the cluster holds for this project
        self.epoch: str | None = None  # the scheduler's, new only with a new scheduler

    def _call(self, op: str, wait: float | None = None, **kwargs: Any) -> Any:
        async def call() -> Any:
            return await asyncio.wait_for(
                getattr(self.client.scheduler, op)(**kwargs), wait or self.timeout
            )

        return self.client.sync(call)

    def agent_state(self) -> dict[str, Any] | None:
        """What the scheduler's agent holds, or None where there is no agent yet (a new
        scheduler, or one restarted since)."""
        if self.epoch is None:  # the handler may not be there: ask without calling it
            asked = agent.on_node(plugins.agent_state)

            async def ask() -> Any:
                call = self.client.run_on_scheduler(asked, asynchronous=True)
                return await asyncio.wait_for(call, self.timeout)

            state = self.client.sync(ask)
        else:
            state = self._call("shipit_state")
        return state if isinstance(state, dict) else None

    def install_agent(self) -> None:
        """Register shipit's two plugins where the scheduler runs no agent or another
        version of it. The state the cluster holds (every project's units) carries over."""
        state = self.agent_state()
        if state is None or state.get("agent") != AGENT:
            logger.info("installing the shipit agent %s on the cluster", AGENT)
            self._call(
                "register_scheduler_plugin",
                plugin=agent.plugin(plugins.ShipitSchedulerPlugin, AGENT),
                name=protocol.PLUGIN_NAME,
                idempotent=False,
            )
            replies = self._call(
                "register_worker_plugin",
                plugin=agent.plugin(worker.ShipitWorkerPlugin, AGENT),
                name=protocol.PLUGIN_NAME,
                idempotent=False,
            )
            for address, reply in replies.items():
                if reply.get("status") != "OK":
                    logger.warning(
                        "the shipit agent failed on %s: %s", address, reply.get("exception")
                    )
            state = self.agent_state()
            assert state is not None
        self.epoch = state["epoch"]
        self.remote = {name: dict(u) for name, u in state["units"].items()}
        self.own = {name for name, u in state["units"].items() if u["project"] == self.project}

    def is_current(self, packs: Sequence[Pack], problems: Sequence[SyntaxProblem] = ()) -> bool:
        """True when the cluster already holds exactly these packs (as far as this client saw)."""
        if self.remote is None:
            return False
        names = {p.name for p in packs} | {p.unit for p in problems if p.unit in self.own}
        return names == self.own and all(
            self.remote.get(p.name, {}).get("digest") == p.digest for p in packs
        )

    def push(self, packs: Sequence[Pack], problems: Sequence[SyntaxProblem] = ()) -> SyncReport:
        """Send what changed; return once every node confirmed it (or said why not)."""
        started = time.perf_counter()
        if self.remote is None:
            self.install_agent()
        missing: set[str] = set()
        for _ in range(4):
            assert self.remote is not None
            # A unit that does not compile keeps its last good version on the cluster.
            held_back = sorted({p.unit for p in problems if p.unit in self.remote})
            units, payloads = self._message(packs, held_back, missing)
            reply = self._call(
                "shipit_push",
                # The scheduler gives each worker `timeout`: wait longer, for its report.
                wait=self.timeout * 1.5 + 10,
                project=self.project,
                units=units,
                payloads=payloads,
                timeout=self.timeout,
                python=protocol.this_python(),
            )
            if reply is None:  # a scheduler that has never seen shipit (it restarted)
                self.install_agent()
                missing = set()
            elif reply["status"] == "missing-units":  # the cluster forgot them (a new scheduler)
                for name in reply["units"]:
                    self.remote.pop(name, None)
            elif reply["status"] == "refused":  # a path or name nodes must not write
                raise PushRefused(f"the scheduler refused the push: {reply['error']}")
            elif reply["status"] == "missing":
                missing = set(reply["digests"])
            else:
                break
        else:
            raise PushRefused(
                "the scheduler kept asking for files; is another client pushing the same units?"
            )

        events.synced()  # guards in this process check parity again before their next submit
        changed = set(reply["changed"])
        for pack in packs:
            self.remote[pack.name] = {"digest": pack.digest, "manifest": dict(pack.manifest)}
        for name in reply.get("removed", ()):
            self.remote.pop(name, None)
        self.own = {u["name"] for u in units}
        results = [
            UnitResult(
                name=p.name,
                status="shipped" if p.name in changed else "unchanged",
                digest=p.digest,
                files=len(p.manifest),
                size=p.size,
                bytes_sent=len(payloads.get(p.name, b"")) if p.name in changed else 0,
                origin=p.origin,
            )
            for p in packs
        ]
        results += [UnitResult(name=n, status="removed") for n in reply.get("removed", ())]
        results += [
            UnitResult(name=n, status="not shipped")
            for n in sorted({p.unit for p in problems if p.unit})
        ]
        return SyncReport(
            units=tuple(sorted(results, key=lambda u: u.name)),
            nodes=_nodes(reply),
            problems=tuple(problems),
            seconds=time.perf_counter() - started,
            generation=reply["generation"],
            holding=tuple(reply["holding"]) if "holding" in reply else None,  # type: ignore[arg-type]
        )

    def forget(self, names: Sequence[str]) -> SyncReport:
        """Remove these units, of whichever project, from the scheduler and every node: each
        project that holds one is sent its unit list without them (nothing else changes)."""
        started = time.perf_counter()
        state = self.agent_state()
        held = state["units"] if state else {}
        unknown = sorted(set(names) - held.keys())
        if unknown:
            holds = ", ".join(sorted(held)) or "no shipped unit"
            raise UsageError(
                f"no unit named {', '.join(unknown)} on the cluster", tip=f"it holds: {holds}"
            )
        self.install_agent()  # the same agent, or a newer one taking the state over
        results: list[UnitResult] = []
        nodes: dict[str, NodeResult] = {}
        for project in sorted({held[n]["project"] for n in names}):
            keep = [
                {"name": n, "digest": u["digest"]}
                for n, u in sorted(held.items())
                if u["project"] == project and n not in names
            ]
            reply = self._call(
                "shipit_push", wait=self.timeout * 1.5 + 10, project=project, units=keep,
                payloads={}, timeout=self.timeout, python=protocol.this_python(),
            )  # fmt: skip
            if not isinstance(reply, dict) or reply.get("status") != "OK":
                error = reply.get("error") if isinstance(reply, dict) else None
                raise PushRefused(f"the scheduler refused to forget: {error or reply}")
            results += [UnitResult(name=n, status="removed") for n in reply.get("removed", ())]
            for node in _nodes(reply):  # a node that failed any of the removals failed
                if node.error is not None or node.address not in nodes:
                    nodes[node.address] = node
        events.synced()
        return SyncReport(
            units=tuple(sorted(results, key=lambda u: u.name)),
            nodes=tuple(nodes.values()),
            seconds=time.perf_counter() - started,
        )

    def _message(
        self, packs: Sequence[Pack], held_back: Sequence[str], missing: set[str]
    ) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        """The project's full unit list, and a zip per unit of the files the cluster lacks,
        compressed unless it is large and every node is on this host: compressing 20 MB
        costs more time than sending it over loopback."""
        units, payloads = [], {}
        local: bool | None = None  # asked of the scheduler once, and only for large payloads
        for pack in packs:
            entry = self._entry(pack)
            units.append(entry)
            wanted = {rel for rel, digest in pack.manifest.items() if digest in missing}
            if "manifest" in entry:
                wanted.update(self._unsent(pack))
            if wanted:
                if local is None and sum(pack.file_sizes.get(r, 0) for r in wanted) > _BIG:
                    local = _all_on_loopback(self.client)
                payloads[pack.name] = pack.zip(wanted, compress=not local)
        units += [{"name": n, "digest": self.remote[n]["digest"]} for n in held_back]  # type: ignore[index]
        return units, payloads

    def _entry(self, pack: Pack) -> dict[str, Any]:
        assert self.remote is not None
        if self.remote.get(pack.name, {}).get("digest") == pack.digest:
            return {"name": pack.name, "digest": pack.digest}
        return {"name": pack.name, "digest": pack.digest, "manifest": dict(pack.manifest)}

    def _unsent(self, pack: Pack) -> list[str]:
        """The files of a pack whose content the cluster's copy of the unit does not have."""
        assert self.remote is not None
        have = set(self.remote.get(pack.name, {}).get("manifest", {}).values())
        return [rel for rel, digest in pack.manifest.items() if digest not in have]


def _nodes(reply: dict[str, Any]) -> tuple[NodeResult, ...]:
    """Each node's answer to a push, the scheduler first."""
    return tuple(
        NodeResult(address=a, role=r["role"], error=r.get("error") if not r["ok"] else None)
        for a, r in sorted(
            reply["nodes"].items(), key=lambda i: (i[1]["role"] != "scheduler", i[0])
        )
    )
