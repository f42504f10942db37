"""shipit's one scheduler plugin and one worker plugin, both registered under ``shipit``.

The scheduler plugin holds the current version of every unit (manifest and file bytes) and
answers three handlers; the worker plugin installs a fourth on each worker.

- ``shipit_push``   client -> scheduler: a project's units; the scheduler applies the new
                    versions to itself and to every worker at once, and reports per node.
- ``shipit_state``  the current versions (and which agent answers): a joining or lagging
                    worker catches up from it, a client learns what the cluster holds.
- ``shipit_fetch``  file bytes by digest, for a node that lacks some.
- ``shipit_apply``  scheduler -> worker.
- ``shipit_requirements``, ``shipit_wheels``, ``shipit_packages``: what joining workers
                    install (``joining.py``), and how each worker's install went.

What must outlive a plugin lives on the Dask server object itself (``_shipit_state`` on the
scheduler, ``_shipit_store`` on each node), so that registering the plugins again (a newer
client) or Dask's own ``client.restart()`` loses nothing: units of every project stay, and
an ``epoch`` that is new only with a new scheduler tells workers when to take the whole
state afresh instead of trusting a generation number.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from . import joining
from .protocol import (
    APPLY_TIMEOUT,
    ERROR_KEY,
    PLUGIN_NAME,
    PROTOCOL,
    NodeReply,
    check_unit,
    error_text,
    lost_worker_text,
    mismatch_text,
    python_of,
    unzip,
    windows_problem,
)
from .store import Refused, _manifest_of, node_store, off_the_loop

logger = logging.getLogger("distributed.shipit")
STAGED_BYTES = 256 * 1024  # a push this large crosses to each host once


def _host_facts(scheduler: Any, address: str) -> dict[str, Any]:
    """What a worker said of its host when it joined (Dask's own version report)."""
    ws = scheduler.workers.get(address)
    return dict((getattr(ws, "versions", None) or {}).get("host", {}))


def agent_state(dask_scheduler: Any) -> dict[str, Any] | None:
    """The scheduler agent's state (as ``shipit_state`` gives it), None where none runs.
    Asked through ``run_on_scheduler``: a scheduler without the handler would log a
    traceback for a call of ``shipit_state``."""
    plugin = dask_scheduler.plugins.get(PLUGIN_NAME)
    state = getattr(plugin, "state", None)
    return state() if callable(state) else None


class ShipitSchedulerPlugin(SchedulerPlugin):
    """Holds the current version of every unit and fans pushes out to the workers."""

    name = PLUGIN_NAME

    def __init__(self, agent: str) -> None:
        self.agent = agent

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        state = getattr(scheduler, "_shipit_state", None)
        if not isinstance(state, dict) or state.get("protocol") != PROTOCOL:
            state = {
                "protocol": PROTOCOL,
                "epoch": uuid.uuid4().hex,
                "generation": 0,
                "units": {},  # name -> digest, manifest, project, python
                "blobs": {},
                "behind": set(),  # workers whose last push failed: the next sync retries
                "lock": asyncio.Lock(),
            }
            scheduler._shipit_state = state
        self.state_ = state
        self.store = node_store(scheduler, "scheduler")
        scheduler.handlers.update(
            shipit_push=self.push, shipit_state=self.state, shipit_fetch=self.fetch,
            shipit_requirements=self.requirements, shipit_packages=self.packages,
            shipit_wheels=lambda project: joining.wheels_of(self.state_, project),
        )  # fmt: skip

    async def close(self) -> None:
        if self.scheduler.plugins.get(PLUGIN_NAME) is self:  # not replaced: Dask is closing
            await off_the_loop(self.store.remove)

    @property
    def units(self) -> dict[str, dict[str, Any]]:
        return self.state_["units"]

    def state(self) -> dict[str, Any]:
        s = self.state_
        blobs = s["blobs"]
        return {
            "agent": self.agent,
            "epoch": s["epoch"],
            "generation": s["generation"],
            "units": s["units"],
            # what the scheduler holds in memory: each unit's bytes, and all of them
            "sizes": {
                name: sum(len(blobs.get(d, b"")) for d in set(u["manifest"].values()))
                for name, u in s["units"].items()
            },
            "held_bytes": sum(len(b) for b in blobs.values()),
            # file bytes sent to workers since the scheduler started: pushes and fetches
            "sent_bytes": s.get("sent", 0),
            "requirements": joining.shown(s),  # what joining workers install, per project
            "packages": {a: r for a, r in s.get("packages", {}).items() if a in self.workers},
        }

    @property
    def workers(self) -> Any:
        return self.scheduler.workers

    def requirements(self, project: str, **record: Any) -> None:
        """Client -> scheduler, after an install: what every node of the project needs."""
        joining.record(self.state_, project, **record)
        self.state_["packages"] = {}  # the install checked every node: earlier words are old

    def packages(self, address: str, report: dict[str, Any]) -> None:
        """Worker -> scheduler: how its install on joining went."""
        kept = {a: r for a, r in self.state_.get("packages", {}).items() if a in self.workers}
        self.state_["packages"] = {**kept, address: report}

    def fetch(self, digests: list[str]) -> dict[str, bytes]:
        blobs = self.state_["blobs"]
        found = {d: blobs[d] for d in digests if d in blobs}
        self.state_["sent"] = self.state_.get("sent", 0) + sum(map(len, found.values()))
        return found

    async def push(
        self,
        project: str,
        units: list[dict[str, Any]],
        payloads: dict[str, bytes],
        timeout: float = APPLY_TIMEOUT,
        python: str | None = None,
    ) -> dict[str, Any]:
        """Take a project's full unit list; ship what changed and drop what it no longer has.

        ``units`` holds every unit of the project as {name, digest} and, for the ones that
        changed, their manifest; ``payloads`` maps unit name to a zip of the files the
        scheduler may lack; ``python`` is the client's ``major.minor``. Replies "missing"
        with the digests it still needs.
        """
        s = self.state_
        try:
            for unit in units:
                check_unit(unit, _manifest_of(s["units"], unit))
        except ValueError as e:
            logger.warning("shipit: push from %s %s", project, e)
            return {"status": "refused", "error": str(e)}
        async with s["lock"]:
            started = time.perf_counter()
            names = {u["name"] for u in units}
            changed = [
                u for u in units if s["units"].get(u["name"], {}).get("digest") != u["digest"]
            ]
            without_manifest = [u["name"] for u in changed if "manifest" not in u]
            if without_manifest:
                return {"status": "missing-units", "units": without_manifest}
            problem = self._windows_problem(changed)
            if problem is not None:
                return {"status": "refused", "error": problem}
            blobs: dict[str, bytes] = {}
            for u in changed:
                if u["name"] in payloads:
                    blobs.update(unzip(payloads[u["name"]], u["manifest"]))
            missing = sorted(
                {d for u in changed for d in u["manifest"].values()}
                - blobs.keys()
                - s["blobs"].keys()
            )
            if missing:
                return {"status": "missing", "digests": missing}
            removed = [
                n for n, u in s["units"].items() if u["project"] == project and n not in names
            ]
            if not changed and not removed:
                retried = await self._catch_up_lagging(timeout, python)
                return {
                    "status": "OK",
                    "generation": s["generation"],
                    "nodes": retried,  # only the lagging ones, tried again
                    "changed": [],
                    "holding": self._holding(),
                }

            for u in changed:
                if s["units"].get(u["name"], {}).get("project", project) != project:
                    logger.warning("shipit: unit %r now comes from %s", u["name"], project)
                s["units"][u["name"]] = {
                    "digest": u["digest"],
                    "manifest": u["manifest"],
                    "project": project,
                    "python": python,
                }
            for name in removed:
                del s["units"][name]
            s["blobs"].update(blobs)
            live = {d for u in s["units"].values() for d in u["manifest"].values()}
            s["blobs"] = {d: b for d, b in s["blobs"].items() if d in live}
            s["generation"] += 1
            update = {
                "epoch": s["epoch"],
                "generation": s["generation"],
                "changed": [self._version(u["name"]) for u in changed],
                "removed": removed,
            }
            # The scheduler unpickles task specs too; the client waits for every node.
            mine, theirs = await asyncio.gather(
                self._to_scheduler(update, blobs), self._to_workers(update, payloads, timeout)
            )
            nodes = {self.scheduler.address: mine, **theirs}
            logger.info(
                "shipit: generation %d (%s) on %d node(s) in %.0f ms",
                s["generation"],
                ", ".join(u["name"] for u in changed) or "removals",
                len(nodes),
                (time.perf_counter() - started) * 1000,
            )
            return {
                "status": "OK",
                "generation": s["generation"],
                "nodes": nodes,
                "changed": [u["name"] for u in changed],
                "removed": removed,
                "holding": self._holding(),
            }

    def _holding(self) -> tuple[int, int]:
        """How many nodes hold the current code, of how many: the scheduler, and each
        worker no push has failed on since it joined."""
        workers, packages = self.workers, self.state_.get("packages", {})
        ok = [a not in self.state_["behind"] and packages.get(a, {}).get("state", "ok") == "ok"
              for a in workers]  # fmt: skip
        return 1 + sum(ok), 1 + len(workers)

    def _version(self, name: str) -> dict[str, Any]:
        u = self.state_["units"][name]
        return {"name": name, **{k: u[k] for k in ("digest", "manifest", "python")}}

    def _windows_problem(self, changed: list[dict[str, Any]]) -> str | None:
        """A path no Windows worker of this cluster could hold, refused before anything is
        sent: every node stays on its last good code."""
        windows = [
            a
            for a in self.scheduler.workers
            if _host_facts(self.scheduler, a).get("OS") == "Windows"
        ]
        if not windows:
            return None
        for u in changed:
            for rel in u["manifest"]:
                problem = windows_problem(rel, root_length=120)
                if problem is not None:
                    return f"{u['name']}: {rel}: {problem} (on {windows[0]})"
        return None

    async def _to_scheduler(self, update: dict[str, Any], blobs: dict[str, bytes]) -> NodeReply:
        try:
            await self.store.apply(blobs=blobs, fetch=self._fetch_local, **update)
            asyncio.get_running_loop().run_in_executor(None, self.store.collect_garbage, set())
            return {"role": "scheduler", "ok": True}
        except Refused as e:
            return {"role": "scheduler", "ok": False, "error": str(e)}
        except Exception as e:
            logger.exception(
                "shipit: the scheduler could not apply generation %d", update["generation"]
            )
            return {"role": "scheduler", "ok": False, "error": error_text(e)}

    async def _fetch_local(self, digests: list[str]) -> dict[str, bytes]:
        return self.fetch(digests)

    async def _catch_up_lagging(
        self, timeout: float, python: str | None = None
    ) -> dict[str, NodeReply]:
        """Bring the workers a past push failed on to the current version, even when
        nothing changed: running the same sync again is how a user repairs a node."""
        s = self.state_
        s["behind"] &= set(self.scheduler.workers)
        # A worker on another Python than this client's never holds its code: one that
        # joined (or that a nanny restarted) since the last push is behind too, and named.
        for address in self.scheduler.workers:
            theirs = python_of(str(_host_facts(self.scheduler, address).get("python", "")))
            if python and theirs and theirs != python:
                s["behind"].add(address)
        if not s["behind"]:
            return {}
        update = {
            "epoch": s["epoch"],
            "generation": s["generation"],
            "changed": [self._version(n) for n in s["units"]],
            "removed": [],
        }
        # base -1 matches no worker's generation: each takes the scheduler's whole state.
        return await self._to_workers(update, {}, timeout, sorted(s["behind"]), base=-1)

    async def _to_workers(
        self,
        update: dict[str, Any],
        payloads: dict[str, bytes],
        timeout: float,
        addresses: list[str] | None = None,
        base: int | None = None,
    ) -> dict[str, NodeReply]:
        names = {u["name"] for u in update["changed"]}
        msg = {
            **update,
            "base": update["generation"] - 1 if base is None else base,
            "payloads": {n: p for n, p in payloads.items() if n in names},
        }
        lean = {**msg, "payloads": {}}
        size = sum(len(p) for p in msg["payloads"].values())
        client_pythons = {u["python"] for u in update["changed"] if u.get("python")}
        s = self.state_

        async def one(address: str, msg: dict[str, Any] = msg, size: int = size) -> NodeReply:
            theirs = python_of(str(_host_facts(self.scheduler, address).get("python", "")))
            other = sorted(p for p in client_pythons if theirs and p != theirs)
            if other:  # tasks from that client cannot run there: do not send it the code
                return {"role": "worker", "ok": False, "error": mismatch_text(theirs, other[0])}
            for _attempt in range(2):
                s["sent"] = s.get("sent", 0) + size
                try:
                    reply = await asyncio.wait_for(
                        self.scheduler.rpc(address).shipit_apply(**msg), timeout
                    )
                except Exception as e:
                    return {"role": "worker", "ok": False, "error": lost_worker_text(e, timeout)}
                if reply is not None and ERROR_KEY in reply:
                    return {"role": "worker", "ok": False, "error": reply[ERROR_KEY]}
                if reply is not None:
                    stale = [
                        u["name"] for u in update["changed"] if reply.get(u["name"]) != u["digest"]
                    ]
                    if stale:
                        return {
                            "role": "worker",
                            "ok": False,
                            "error": f"still on old {', '.join(stale)}",
                        }
                    return {"role": "worker", "ok": True}
                # None: a worker that joined a moment ago has not installed the handler yet.
                await asyncio.sleep(0.2)
                if address not in self.scheduler.workers:
                    break
            return {
                "role": "worker",
                "ok": False,
                "error": "the shipit worker plugin did not answer",
            }

        async def host(members: list[str]) -> list[NodeReply]:
            """A large push goes to one worker per host with the files, then to the others,
            which find them in the host store (or fetch what they lack)."""
            first = await one(members[0])
            return [first, *await asyncio.gather(*(one(a, lean, 0) for a in members[1:]))]

        if addresses is None:
            addresses = list(self.scheduler.workers)
        if size < STAGED_BYTES:
            replies = list(await asyncio.gather(*(one(a) for a in addresses)))
        else:
            hosts: dict[str, list[str]] = {}
            for a in addresses:
                ws = self.scheduler.workers.get(a)
                hosts.setdefault(getattr(ws, "host", None) or a, []).append(a)
            found: dict[str, NodeReply] = {}
            for members, got in zip(
                hosts.values(),
                await asyncio.gather(*(host(m) for m in hosts.values())),
                strict=True,
            ):
                found.update(zip(members, got, strict=True))
            replies = [found[a] for a in addresses]
        behind = self.state_["behind"]
        for address, reply in zip(addresses, replies, strict=True):
            (behind.discard if reply["ok"] else behind.add)(address)
        return dict(zip(addresses, replies, strict=True))
