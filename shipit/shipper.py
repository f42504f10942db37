"""Shipping: the client side of a sync.

A :class:`Shipper` holds one client and what it last saw of the cluster, so that a watch
session sends only the files that changed. :func:`sync` is the one-shot use of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import dask.config
from distributed import Client, Security
from distributed.comm import CommClosedError, parse_address, parse_host_port
from distributed.comm import connect as comm_connect
from distributed.comm.registry import backends

from . import hoststore, remote
from .byvalue import by_value
from .config import Config, load_config
from .connection import is_loopback, warn_if_in_the_clear
from .errors import (
    BadAddress,
    ConnectionFailed,
    ConnectionLost,
    NoSchedulerError,
    NothingToShip,
    PackError,
    PushFailed,
    ShipitError,
    SyntaxProblem,
)
from .install.installer import InstallFailed
from .install.installer import install as install_missing
from .install.requirements import PipOptions
from .install.wheels import code_only
from .parity import check as parity
from .project.discover import Project, Unit
from .project.limits import check_sizes
from .project.pack import Pack, Packer, StaleFile
from .report import NodeResult, SyncReport, UnitResult

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
# Set once this process ships code; nodes living in it (an in-process scheduler) read it.
CLIENT_PROCESS = False
# False in the shipit command's own process, where no user code runs (see no_user_code_here).
_USER_CODE_HERE = True
# What runs on nodes, pickled by value. The agent's version is its source: a change to
# these modules re-registers the plugins.
_AGENT_MODULES = (remote, hoststore)
AGENT = hashlib.sha256(
    b"".join(Path(m.__file__ or "").read_bytes() for m in _AGENT_MODULES)
).hexdigest()[:16]


def no_user_code_here() -> None:
    """Declare that this process runs none of the user's code (the shipit command): a node
    living in it (the scheduler of an embedded cluster) then loads shipped code like any
    other node, for the user's script in another process to use."""
    global _USER_CODE_HERE
    _USER_CODE_HERE = False


def scheduler_address(given: str | None = None) -> str:
    """The address to use: the one given, else DASK_SCHEDULER_ADDRESS (Dask's own setting)."""
    address = (
        given
        or os.environ.get("DASK_SCHEDULER_ADDRESS")
        or dask.config.get("scheduler-address", None)
    )
    if not address:
        raise NoSchedulerError()
    return str(address)


@contextlib.contextmanager
def connect(client: Client | str | None, timeout: float = DEFAULT_TIMEOUT) -> Iterator[Client]:
    """Yield a connected client: the one given, or a new one that is closed afterwards.

    A connection that breaks inside the block raises :class:`ConnectionLost`.
    """
    if isinstance(client, Client):
        with _reporting_lost_connection(client):
            yield client
        return
    new = open_client(scheduler_address(client), timeout)
    lost = False
    try:
        with _reporting_lost_connection(new):
            yield new
    except ConnectionLost:
        lost = True
        raise
    finally:
        if lost:
            _close_quietly(new)
        else:
            new.close()


def _close_quietly(client: Client) -> None:
    """Close a client whose scheduler is gone. Dask's client logs its own reconnect
    attempts, with tracebacks, as it closes; the loss is reported once, by the error."""
    client_log = logging.getLogger("distributed.client")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        with contextlib.suppress(Exception):
            client.close(timeout=2)
    finally:
        client_log.setLevel(level)


@contextlib.contextmanager
def _reporting_lost_connection(client: Client) -> Iterator[None]:
    try:
        yield
    except (CommClosedError, ConnectionError) as e:
        address = getattr(client.scheduler, "address", None) or "?"
        # "in <TCP (closed) ConnectionPool.shipit_push local=… remote=…>: Stream is closed"
        reason = _first_line(e).rpartition(">: ")[2] or type(e).__name__
        raise ConnectionLost(address, reason) from None


def open_client(address: str, timeout: float = DEFAULT_TIMEOUT) -> Client:
    """A new client of the scheduler at ``address``, or :class:`ConnectionFailed` in ``timeout``."""
    _check_address(address)  # a malformed address fails here, not deep inside a Client
    try:
        scheme, _ = parse_address(address)
        if scheme == "tls" and Security().get_connection_args("client")["ssl_context"] is None:
            raise ConnectionFailed(address, "no TLS settings for a client", timeout, tip=_TLS_TIP)
        # Probe first: a Client that fails to start leaves a half-open object whose
        # destructor prints a traceback; a probe fails cleanly.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _probe(address, timeout)).result()
        return Client(address, timeout=timeout, set_as_default=False)
    except ConnectionFailed:
        raise
    except (OSError, TimeoutError, ValueError) as e:
        raise ConnectionFailed(address, _first_line(e), timeout) from None
    except Exception as e:  # something answered, but not in Dask's protocol
        reason = f"it does not speak Dask's protocol ({type(e).__name__})"
        raise ConnectionFailed(address, reason, timeout) from None


def _check_address(address: str) -> None:
    try:
        scheme, location = parse_address(address)
        if scheme not in backends:
            known = ", ".join(f"{name}://" for name in sorted(backends))
            raise ValueError(f"unknown address scheme {scheme!r} (known: {known})")
        if scheme in ("tcp", "tls", "ws", "wss"):
            host, port = parse_host_port(location)
            if not host or not 0 < int(port) < 65536:
                raise ValueError("it needs a host and a port from 1 to 65535")
    except (TypeError, ValueError) as e:
        raise BadAddress(address, _first_line(e)) from None


_TLS_TIP = (
    "set distributed.comm.tls.ca-file, .client.cert and .client.key in Dask's configuration, "
    "e.g. DASK_DISTRIBUTED__COMM__TLS__CA_FILE=ca.pem"
)


async def _probe(address: str, timeout: float) -> None:
    args = Security().get_connection_args("client")
    # The whole exchange is bounded: a server that is not Dask may never finish a handshake.
    comm = await asyncio.wait_for(comm_connect(address, timeout=timeout, **args), timeout)
    comm.abort()


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


_BIG = 1_000_000  # bytes: below this, compressing or not makes no difference worth a look-up


def _all_on_loopback(client: Client) -> bool:
    """True when the scheduler and every worker the client knows of listen on loopback."""
    info = client.scheduler_info(n_workers=-1)
    addresses = [str(info.get("address", "")), *info.get("workers", {})]
    return all(is_loopback(address) for address in addresses)


def project_id(root: Path) -> str:
    """Names a project on the cluster, so a sync removes only its own vanished units."""
    return f"{socket.gethostname()}:{root}"


def _dumps_by_value(plugin: object) -> bytes:
    with by_value(*_AGENT_MODULES):
        return cloudpickle.dumps(plugin)


class Shipper:
    """Ships packs of one project into one cluster, remembering what the cluster holds."""

    def __init__(self, client: Client, root: Path, timeout: float = remote.APPLY_TIMEOUT) -> None:
        global CLIENT_PROCESS
        CLIENT_PROCESS = _USER_CODE_HERE
        self.client = client
        warn_if_in_the_clear(client.scheduler.address)
        self.project = project_id(root)
        self.timeout = timeout
        # What the scheduler holds (name -> digest, manifest); None until asked.
        self.remote: dict[str, dict[str, Any]] | None = None
        self.own: set[str] = set()  # the names the cluster holds for this project

    def _call(self, op: str, wait: float | None = None, **kwargs: Any) -> Any:
        async def call() -> Any:
            return await asyncio.wait_for(
                getattr(self.client.scheduler, op)(**kwargs), wait or self.timeout
            )

        return self.client.sync(call)

    def install_agent(self) -> None:
        """Register shipit's two plugins once; again only when remote.py itself changed."""
        if self._call("get_metadata", keys=["shipit-agent"], default=None) != AGENT:
            logger.info("installing the shipit agent %s on the cluster", AGENT)
            self._call(
                "register_scheduler_plugin",
                plugin=_dumps_by_value(remote.ShipitSchedulerPlugin(AGENT)),
                name=remote.PLUGIN_NAME,
                idempotent=False,
            )
            replies = self._call(
                "register_worker_plugin",
                plugin=_dumps_by_value(remote.ShipitWorkerPlugin(AGENT)),
                name=remote.PLUGIN_NAME,
                idempotent=False,
            )
            for address, reply in replies.items():
                if reply.get("status") != "OK":
                    logger.warning(
                        "the shipit agent failed on %s: %s", address, reply.get("exception")
                    )
        state = self._call("shipit_state")
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
            )
            if reply is None:  # a scheduler that has never seen shipit (it restarted)
                self.install_agent()
                missing = set()
            elif reply["status"] == "missing-units":  # the cluster forgot them (a new scheduler)
                for name in reply["units"]:
                    self.remote.pop(name, None)
            elif reply["status"] == "refused":  # a path or name nodes must not write
                raise ShipitError(f"the scheduler refused the push: {reply['error']}")
            elif reply["status"] == "missing":
                missing = set(reply["digests"])
            else:
                break
        else:
            raise ShipitError(
                "the scheduler kept asking for files; is another client pushing the same units?"
            )

        parity.synced()  # guards in this process check parity again before their next submit
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
        nodes = tuple(
            NodeResult(address=a, role=r["role"], error=r.get("error") if not r["ok"] else None)
            for a, r in sorted(
                reply["nodes"].items(), key=lambda i: (i[1]["role"] != "scheduler", i[0])
            )
        )
        return SyncReport(
            units=tuple(sorted(results, key=lambda u: u.name)),
            nodes=nodes,
            problems=tuple(problems),
            seconds=time.perf_counter() - started,
            generation=reply["generation"],
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


@dataclass(frozen=True)
class Plan:
    """What a sync of this project would ship: the packs that compile and the problems."""

    config: Config
    packs: tuple[Pack, ...]
    problems: tuple[SyntaxProblem, ...]
    units: tuple[Unit, ...]


def plan(path: str | Path = ".", packer: Packer | None = None) -> Plan:
    """Discover and pack the project at ``path``, without connecting anywhere.

    >>> [p.name for p in plan("examples/montecarlo").packs]
    ['montecarlo']
    """
    config = load_config(path)
    project = Project(config)
    units = project.units()
    if not units:
        raise NothingToShip(config.root, [_where(project.root, r) for r in project.source_roots])
    packs, problems = (packer or Packer()).pack(units)
    check_sizes(packs, config)
    return Plan(config=config, packs=tuple(packs), problems=tuple(problems), units=tuple(units))


def _where(root: Path, folder: Path) -> str:
    relative = folder.relative_to(root).as_posix()
    return "its top folder" if relative == "." else f"{relative}/"


def sync(
    client: Client | str | None = None,
    path: str | Path = ".",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    strict: bool = True,
    install: bool = True,
    restart: bool = False,
    dry_run: bool = False,
    index_url: str | None = None,
    extra_index_urls: Sequence[str] | None = None,
    find_links: Sequence[str] | None = None,
    no_index: bool | None = None,
    wheels_from_client: bool | None = None,
    pip_timeout: float | None = None,
    on_progress: Callable[[str], None] = lambda step: None,
) -> SyncReport:
    """Ship the project at ``path`` to the scheduler and every worker, then install there
    what they lack (see :func:`shipit.install`); restart workers only with ``restart``.

    ``client`` is a connected :class:`distributed.Client`, a scheduler address, or None for
    ``DASK_SCHEDULER_ADDRESS``. Returns once every node confirmed the new code and pip
    finished everywhere. With ``strict`` (the default) a unit that does not compile raises
    :class:`PackError`, a node that failed raises :class:`PushFailed` and an incomplete
    install raises :class:`InstallFailed`, after the rest was done. ``dry_run`` sends no
    code and installs nothing: ``report.install`` holds the plan. Pip options left as None
    come from ``[tool.shipit]``. ``on_progress`` hears each step as it starts.

    >>> report = shipit.sync(client, find_links=["wheels"], no_index=True)
    >>> [u.name for u in report.shipped], [r.status for r in report.install.runs]
    (['montecarlo'], ['installed'])
    """
    on_progress("finding, hashing and compiling the project's files")
    the_plan = plan(path)
    if install:  # a bad pip option fails before anything is sent
        PipOptions.resolve(
            the_plan.config, index_url=index_url, extra_index_urls=extra_index_urls,
            find_links=find_links, no_index=no_index,
        )  # fmt: skip
    on_progress("connecting to the scheduler")
    with connect(client, timeout) as c:
        if dry_run:
            report = SyncReport(units=(), notes=("dry run: no code was sent",))
        else:
            for _ in range(3):
                # Projects installed as wheels do not ship as code too (install=False: they do).
                packs, problems = (
                    code_only(the_plan) if install else (the_plan.packs, the_plan.problems)
                )
                files = sum(len(p.manifest) for p in packs)
                on_progress(f"shipping {len(packs)} unit(s), {files:,} files, to every node")
                try:
                    report = Shipper(c, the_plan.config.root).push(packs, problems)
                    break
                except StaleFile:  # edited mid-sync: take the new snapshot
                    the_plan = plan(path)
            else:
                raise ShipitError("files kept changing during the sync; try again when they settle")
        if install:
            on_progress("comparing versions; installing what the nodes lack")
            done = install_missing(
                c, path, restart=restart, dry_run=dry_run, index_url=index_url,
                extra_index_urls=extra_index_urls, find_links=find_links, no_index=no_index,
                wheels_from_client=wheels_from_client, pip_timeout=pip_timeout,
                timeout=timeout, strict=False, plan=the_plan,
            )  # fmt: skip
            report = dataclasses.replace(report, install=done)
    if strict and report.problems:
        raise PackError(report.problems)
    if strict and report.failures:
        raise PushFailed(report.failures, report)
    if strict and report.install is not None and not report.install.ok:
        raise InstallFailed(report.install)
    return report
