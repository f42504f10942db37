"""One sync: plan the project, push the packs to every node, install what the nodes lack.

The configuration is read once, into :class:`~shipit.config.Options`, and the plan made once;
both are handed to the :class:`~shipit.shipper.Shipper`, the install and its parity check.

Example::

    report = shipit.sync(client)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from distributed import Client

from . import kernel
from .config import DEFAULT_TIMEOUT, Options, PipOverrides, load_config
from .connection import connect
from .errors import InstallFailed, NeverSettled, PackError, PushFailed, StaleFile, UsageError
from .install.installer import Installer
from .install.wheels import code_only
from .parity.check import Parity
from .project.plan import Plan, plan_of
from .report import InstallReport, SyncReport
from .shipper import Shipper
from .text import names

if TYPE_CHECKING:
    from typing_extensions import Unpack


def sync(
    client: Client | str | None = None,
    path: str | Path = ".",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    strict: bool = True,
    install: bool = True,
    restart: bool = False,
    dry_run: bool = False,
    on_progress: Callable[[str], None] = lambda step: None,
    **pip: Unpack[PipOverrides],
) -> SyncReport:
    """Ship the project at ``path`` to the scheduler and every worker, then install there
    what they lack (see :func:`shipit.install`); restart workers only with ``restart``.

    ``client`` is a connected :class:`distributed.Client`, a scheduler address, or None for
    ``DASK_SCHEDULER_ADDRESS``. Returns once every node confirmed the new code and pip
    finished everywhere. With ``strict`` (the default) a unit that does not compile raises
    :class:`PackError`, a node that failed raises :class:`PushFailed` and an incomplete
    install raises :class:`InstallFailed`, after the rest was done. ``dry_run`` sends no
    code and installs nothing: ``report.install`` holds the plan. ``on_progress`` hears each
    step as it starts. The pip settings (``index_url``, ``extra_index_urls``, ``find_links``,
    ``no_index``, ``wheels_from_client``, ``pip_timeout``; see :class:`PipOverrides`) left
    out or None come from ``[tool.shipit]``.

    Example::

        report = shipit.sync(client, find_links=["wheels"], no_index=True)
        [u.name for u in report.shipped], [r.status for r in report.install.runs]
        # (['montecarlo'], ['installed'])
    """
    on_progress("finding, hashing and compiling the project's files")
    config = load_config(path)
    the_plan = plan_of(config)
    # A bad pip option fails before anything is sent.
    options = Options.resolve(config, timeout=timeout, install=install, **pip)
    on_progress("connecting to the scheduler")
    with connect(client, timeout) as c:
        report, _ = ship_and_install(
            c, the_plan, options, install=install, restart=restart, dry_run=dry_run,
            on_progress=on_progress,
        )  # fmt: skip
    if strict and report.problems:
        raise PackError(report.problems)
    if strict and report.failures:
        raise PushFailed(report.failures, report)
    if strict and report.install is not None and not report.install.ok:
        raise InstallFailed(report.install)
    return report


def ship_and_install(
    client: Client,
    the_plan: Plan,
    options: Options,
    *,
    install: bool = True,
    restart: bool = False,
    dry_run: bool = False,
    on_progress: Callable[[str], None] = lambda step: None,
) -> tuple[SyncReport, Plan]:
    """The body of a sync, to a connected client: push the plan's packs (those that ship as
    code, unless ``install`` is off), then install what the nodes lack. Returns the report
    and the plan it shipped: a file edited mid-sync makes a new one."""
    kernel.look(the_plan.units)  # what this process has loaded of them, from now on
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
                report = Shipper(client, the_plan.config.root).push(packs, problems)
                break
            except StaleFile:  # edited mid-sync: take the new snapshot
                the_plan = plan_of(the_plan.config)
        else:
            raise NeverSettled()
    if install:
        on_progress("comparing versions; installing what the nodes lack")
        done = Installer(client, options, the_plan).run(restart=restart, dry_run=dry_run)
        report = dataclasses.replace(report, install=done)
    elif not dry_run:  # nothing installs, but a difference is worth one line
        on_progress("comparing versions")
        found = Parity(the_plan.config, plan=the_plan).report(client, options.timeout)
        differ = sorted({r.package for r in found.errors if r.kind == "package"})
        if differ:
            note = (
                f"versions differ on the cluster ({names(differ)}): `shipit check` shows "
                "them; `shipit sync` without --no-install installs them"
            )
            report = dataclasses.replace(report, notes=(*report.notes, note))
    held_back = tuple((str(path), why) for path, why in the_plan.held_back)
    readmitted = tuple((str(path), why) for path, why in the_plan.readmitted)
    return dataclasses.replace(report, held_back=held_back, readmitted=readmitted), the_plan


def preview(
    client: Client | str | None,
    path: str | Path = ".",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    **pip: Unpack[PipOverrides],
) -> tuple[Plan, InstallReport]:
    """What ``shipit sync --dry-run`` shows, changing nothing: the plan of the units that
    ship as code, and what the install would run where."""
    config = load_config(path)
    the_plan = plan_of(config)
    options = Options.resolve(config, timeout=timeout, **pip)
    with connect(client, timeout) as c:
        report = Installer(c, options, the_plan).run(dry_run=True)
    packs, problems = code_only(the_plan)
    return dataclasses.replace(the_plan, packs=packs, problems=problems), report


def forget(
    client: Client | str | None = None,
    names: Iterable[str] = (),
    *,
    timeout: float = DEFAULT_TIMEOUT,
    strict: bool = True,
) -> SyncReport:
    """Remove shipped units, of whichever project, from the scheduler and every node: tasks
    there can no longer import them, and a later sync of their project ships them again.

    With ``strict`` (the default) a node that did not take the removal raises
    :class:`PushFailed`. A name the cluster does not hold is a :class:`UsageError`.

    Example::

        shipit.forget(client, ["oldlib"]).units
        # (UnitResult(name='oldlib', status='removed', ...),)
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise UsageError("name the units to forget", tip="shipit status lists what nodes hold")
    with connect(client, timeout) as c:
        report = Shipper(c, Path.cwd()).forget(wanted)
    if strict and not report.ok:
        raise PushFailed(report.failures, report)
    return report
