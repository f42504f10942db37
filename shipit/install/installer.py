"""Install what the nodes lack: the client side of the install step of ``shipit sync``.

A parity check (``shipit.parity.check``) says what each node is missing or holds at another
version than the client; each becomes ``name==version`` (``shipit.install.requirements``). Nodes
are grouped by Python environment (``installer.environment`` on each) and pip runs once per
group, in one node's process, through ``client.run``, all groups at once. A check after the
install tells which workers still run old code: they restart through their nannies when
asked, else the report names them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import Client
from packaging.utils import canonicalize_name

from .. import events
from ..agent import on_node
from ..ask import ask_at_once
from ..config import DEFAULT_TIMEOUT, Options, PipOverrides, load_config
from ..connection import connect
from ..errors import BuildFailed, DownloadFailed, InstallFailed
from ..node import pip as installer
from ..parity import check as parity
from ..parity.versions import DASK_STACK
from ..report import EnvironmentInstall, InstallReport, ParityReport
from ..shipper import project_id
from ..text import names
from .requirements import SCHEDULER, Group, for_every_node, group, needs
from .restarts import needed, only_restarts, restart_stale
from .wheels import (
    LocalProject,
    build_wheel,
    download,
    local_projects,
    wheel_version,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..project.plan import Plan

logger = logging.getLogger(__name__)

_ANSWER_MARGIN = 30.0  # beyond the pip timeout, for the node to report back
JOIN_WHEELS_MAX = 256 << 20  # wheels the scheduler keeps for workers that join


def install(
    client: Client | str | None = None,
    path: str | Path = ".",
    *,
    restart: bool = False,
    dry_run: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    strict: bool = True,
    plan: Plan | None = None,
    **pip: Unpack[PipOverrides],
) -> InstallReport:
    """Install on every node, pinned to the client's versions, what it lacks to run the project.

    pip runs once per Python environment per host. The pip settings (see
    :class:`~shipit.config.PipOverrides`) left out or None come from ``[tool.shipit]``.
    With ``restart``, workers that had loaded a replaced package restart through their
    nannies. With ``strict`` (the default) an incomplete install raises
    :class:`InstallFailed` once every node has been tried. ``plan``, a :func:`shipit.plan`
    of the same project just made, spares reading the project again.

    Example::

        report = shipit.install(client, find_links=["wheels"], no_index=True)
        [(run.status, run.requirements) for run in report.runs]
        # [('installed', ('instpkg==2.0.0',))]
    """
    config = load_config(path) if plan is None else plan.config
    options = Options.resolve(config, timeout=timeout, **pip)
    with connect(client, timeout) as connected:
        report = Installer(connected, options, plan).run(restart=restart, dry_run=dry_run)
    if strict and not report.ok:
        raise InstallFailed(report)
    return report


class Installer:
    """One install into one cluster: check, plan, run pip per environment, restart, check."""

    def __init__(self, client: Client, options: Options, plan: Plan | None = None) -> None:
        """``plan``, the project's :class:`~shipit.Plan` when a sync just made it, spares
        reading the project again; without one the parity check reads it."""
        self.client, self.config, self.plan = client, options.config, plan
        self.options = options.pip
        self.offline, self.pip_timeout = options.wheels_from_client, options.pip_timeout
        self.timeout = options.timeout
        self.projects, self.skipped = local_projects(self.config)
        self.folder: Path | None = None  # for wheels, while run() runs
        self._built: dict[str, Path] = {}
        self._fetched: dict[tuple[Any, ...], list[Path]] = {}

    def run(self, *, restart: bool = False, dry_run: bool = False) -> InstallReport:
        started = time.perf_counter()
        check = parity.Parity(self.config, plan=self.plan)
        check.wanted.update({p.name: True for p in self.projects})
        with tempfile.TemporaryDirectory(prefix="shipit-wheels-") as folder:
            self.folder = Path(folder)
            local = {p.name: p.version or self._version_by_build(p) for p in self.projects}
            before = check.report(self.client, self.timeout)
            need = needs(before.rows, check.wanted, local)
            groups, unknown = ([], []) if not need.by_node else group(need.by_node, self._envs())
            skipped = (*self.skipped, *need.skipped)
            if dry_run:
                skipped = (*skipped, *_installed_nowhere(before), *_optional_absent(before))
            lost = [_failed_node(n, need.by_node[n]) for n in unknown]
            if dry_run:
                answer = {
                    "ok": True,
                    "options": ["--no-index"] if self.offline else self.options.args(),
                }
                runs = (*(_result(g, answer, planned=True) for g in groups), *lost)
                restarts = needed(before)
                seconds = time.perf_counter() - started
                return InstallReport(runs, restarts, skipped, dry_run=True, seconds=seconds)
            runs = (*self._install(groups), *lost)
            self._record(for_every_node(before.rows, check.wanted, local, leave=DASK_STACK))
        after = before
        if groups:
            events.synced()  # guards in this process check again before their next submission
            after = check.report(self.client, self.timeout)
        timeout = max(60.0, 4 * self.timeout)
        restarts = tuple(restart_stale(self.client, after, timeout)) if restart else needed(after)
        if any(r.status == "restarted" for r in restarts):
            after = check.report(self.client, self.timeout)
        remaining = tuple(
            r for r in after.errors if r.kind != "loaded" and not only_restarts(r, check.wanted)
        )  # what pip can fix: not code this process loaded
        skipped = (*skipped, *_installed_nowhere(after))
        seconds = time.perf_counter() - started
        return InstallReport(runs, restarts, skipped, remaining, seconds=seconds)

    def _record(self, requirements: Sequence[str]) -> None:
        """Tell the scheduler what a worker that joins must install, with the wheels shipped
        in this run (it keeps those of earlier runs that still match a pin)."""
        wheels = {w.name: w for w in self._built.values()}
        wheels |= {w.name: w for fetched in self._fetched.values() for w in fetched}
        if sum(w.stat().st_size for w in wheels.values()) > JOIN_WHEELS_MAX:
            logger.warning("wheels over %d MiB: workers that join get none", JOIN_WHEELS_MAX >> 20)
            wheels = {}
        record = {
            "requirements": list(requirements),
            "options": ["--no-index"] if self.offline else self.options.args(),
            "wheels": {name: w.read_bytes() for name, w in wheels.items()},
            "timeout": self.pip_timeout,
            "python": "{}.{}".format(*sys.version_info[:2]),
        }
        project = project_id(self.config.root)
        try:
            self.client.sync(self.client.scheduler.shipit_requirements, project=project, **record)
        except Exception as e:  # an agent without the handler: joining workers get no packages
            logger.warning("could not record the requirements for workers that join: %s", e)

    def _version_by_build(self, project: LocalProject) -> str:
        """A version that pyproject.toml does not state (dynamic): build to learn it."""
        return wheel_version(self._wheel(project))[1]

    def _wheel(self, project: LocalProject) -> Path:
        assert self.folder is not None, "wheels are made inside run()"
        if project.name not in self._built:
            (self.folder / "local").mkdir(exist_ok=True)
            self._built[project.name] = build_wheel(project, self.folder / "local")
        return self._built[project.name]

    def _envs(self) -> dict[str, Mapping[str, Any]]:
        """Every node's environment (its key, host, prefix and wheel tags), read at once."""
        scheduler, workers = ask_at_once(
            self.client, installer, installer.environment, timeout=self.timeout
        )
        answers = dict(workers) if isinstance(workers, dict) else {}
        answers[SCHEDULER] = scheduler
        return {node: env for node, env in answers.items() if isinstance(env, dict)}

    def _install(self, groups: Sequence[Group]) -> list[EnvironmentInstall]:
        """Prepare each group's wheels, then run pip in every group at once."""
        jobs, results = [], {}
        for g in groups:
            try:
                jobs.append((g, *self._payload(g)))
            except (BuildFailed, DownloadFailed) as e:
                results[g.key] = _result(g, {"ok": False, "error": str(e)})

        async def all_groups() -> list[dict[str, Any]]:
            return await asyncio.gather(*(self._run_one(*job) for job in jobs))

        if jobs:
            logger.info("running pip in %d environment(s)", len(jobs))
            answers = self.client.sync(all_groups)
            for (g, _, wheels), answer in zip(jobs, answers, strict=True):
                results[g.key] = _result(g, answer, wheels=sorted(wheels))
        return [results[g.key] for g in groups]

    def _payload(self, g: Group) -> tuple[list[str], dict[str, bytes]]:
        """pip's options on the node, and the wheels to ship with the run."""
        names = {canonicalize_name(r.partition("==")[0]) for r in g.requirements}
        local = [self._wheel(p) for p in self.projects if p.name in names]
        if not self.offline:
            return self.options.args(), {w.name: w.read_bytes() for w in local}
        env = g.environment
        # Hosts alike (the same Python, platform and needs) share one download.
        same = (g.requirements, *(str(env[k]) for k in ("python", "implementation", "abis")))
        target = (*same, tuple(env["platforms"]))
        if target not in self._fetched:
            assert self.folder is not None, "wheels are made inside run()"
            outdir = self.folder / f"for-{len(self._fetched)}"
            outdir.mkdir()
            links = sorted({w.parent for w in local})
            self._fetched[target] = download(
                g.requirements, env, self.options, outdir, find_links=links,
                timeout=self.pip_timeout,
            )  # fmt: skip
        return ["--no-index"], {f.name: f.read_bytes() for f in self._fetched[target]}

    async def _run_one(self, g: Group, options: list[str], wheels: dict[str, bytes]) -> Any:
        args = (list(g.requirements), options, wheels, self.pip_timeout)
        pip_install = on_node(installer.pip_install)
        try:
            if g.ran_on == SCHEDULER:
                call = self.client.run_on_scheduler(pip_install, *args, asynchronous=True)
            else:
                call = self.client.run(
                    pip_install, *args, workers=[g.ran_on], on_error="return",
                    asynchronous=True,
                )  # fmt: skip
            answer = await asyncio.wait_for(call, self.pip_timeout + _ANSWER_MARGIN)
        except (asyncio.TimeoutError, TimeoutError):
            error = f"{g.ran_on} did not answer within {self.pip_timeout:g} s"
            return {"ok": False, "error": error}
        except Exception as e:  # the node left, the connection broke: this group's failure only
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}
        if g.ran_on != SCHEDULER:
            answer = answer.get(g.ran_on, RuntimeError(f"{g.ran_on} is not in the cluster"))
        if isinstance(answer, BaseException):
            return {"ok": False, "error": f"{type(answer).__name__}: {answer}"}
        return answer


def _result(
    g: Group, answer: Mapping[str, Any], wheels: Sequence[str] = (), planned: bool = False
) -> EnvironmentInstall:
    installed = tuple(answer.get("installed") or ())
    ok = bool(answer.get("ok"))
    status = "installed" if installed else "satisfied"
    status = "planned" if planned else status if ok else "failed"
    return EnvironmentInstall(
        host=str(g.environment.get("host", "?")),
        prefix=str(g.environment.get("prefix", "?")),
        nodes=g.nodes,
        ran_on=g.ran_on,
        requirements=g.requirements,
        status=status,  # type: ignore[arg-type]
        installed=installed,
        error=None if ok else str(answer.get("error") or "pip failed"),
        wheels=tuple(wheels),
        options=tuple(answer.get("options") or ()),
        output=str(answer.get("output") or ""),
        seconds=float(answer.get("seconds") or 0.0),
        unobtainable=tuple(answer.get("unobtainable") or ()),
    )


def _failed_node(node: str, requirements: Sequence[str]) -> EnvironmentInstall:
    return EnvironmentInstall(
        host="?", prefix="?", nodes=(node,), ran_on=node, requirements=tuple(requirements),
        status="failed", error="its environment did not answer; is the node busy or gone?",
    )  # fmt: skip


def _optional_absent(report: ParityReport) -> list[str]:
    """Optional distributions (imported where a failed import is caught) that some nodes
    lack: noted, never installed."""
    notes = []
    for row in report.rows:
        cells = {**row.by_worker, "the scheduler": row.scheduler}
        lacking = [node for node, cell in cells.items() if cell == "missing"]
        if row.kind == "optional" and lacking:
            notes.append(
                f"{row.package}: optional (its imports are guarded), not on {names(lacking)}; "
                "not installed: add it to [tool.shipit] extra-packages to install it"
            )
    return notes


def _installed_nowhere(report: ParityReport) -> list[str]:
    """Distributions the project requires that nothing has, the client included: named, not
    failed (no node can get the client's version of them)."""
    return [
        f"{r.package}: {r.suggestion}"
        for r in report.rows
        if r.severity == "warning" and r.client == "missing"
    ]
