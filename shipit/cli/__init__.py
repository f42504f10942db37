"""The command line: parse, call one library function, render, map errors to exit codes.

Exit codes: 0 ok, 1 a problem found (a failed push, a syntax error), 2 usage or connection.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .. import shipper
from ..config import DEFAULT_TIMEOUT
from ..errors import ShipitError
from ..install.wheels import code_only
from ..parity import check as parity
from ..project.plan import Plan, plan
from ..report import InstallReport, SyncReport
from ..sync import sync as sync_project
from ..text import size_text
from ..watch import Watch, WatchEvent
from ._common import Progress as _Progress

F = TypeVar("F", bound=Callable[..., Any])


def _size(n: int) -> str:
    return size_text(n, binary=False)


def _fail(error: ShipitError) -> None:
    click.secho(f"ERROR {error}", fg="red", err=True)
    if error.tip:
        click.echo(f"TIP   {error.tip}", err=True)
    sys.exit(error.exit_code)


def _handles_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ShipitError as e:
            _fail(e)

    return wrapper  # type: ignore[return-value]


scheduler_option = click.option(
    "--scheduler",
    metavar="ADDR",
    envvar="DASK_SCHEDULER_ADDRESS",
    show_envvar=True,
    help="Scheduler address, e.g. tcp://host:8786.",
)
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the scheduler to answer a connection.",
)
# Checked by the library, which says what is wrong in one line.
workers_option = click.option(
    "--workers",
    "n_workers",
    type=click.IntRange(min=1),
    help="Workers of the local cluster started when no scheduler is given.",
)
path_argument = click.argument("path", type=click.Path(), default=".", required=False)


_NO_ARGS_IS_HELP: type[click.UsageError] = getattr(
    click.exceptions, "NoArgsIsHelpError", type("_Never", (click.UsageError,), {})
)


class _Group(click.Group):
    """Click's own usage errors (an unknown option, a bad value) in shipit's one-line form."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = super().main(*args, **{**kwargs, "standalone_mode": False})
        except _NO_ARGS_IS_HELP as e:  # plain `shipit`: the help, as click shows it
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            command = e.ctx.command_path if e.ctx is not None else "shipit"
            click.secho(f"ERROR {e.format_message()}", fg="red", err=True)
            click.echo(f"TIP   see {command} --help", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log more (-vv for debug).")
@click.version_option(package_name="shipit")
def main(verbose: int) -> None:
    """Ship local code to a Dask cluster and keep every node's versions in parity."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    shipper.no_user_code_here()  # an embedded cluster's scheduler here serves scripts elsewhere


@main.command()
@path_argument
@scheduler_option
@timeout_option
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would ship and, given a scheduler, what would be installed where; "
    "change nothing.",
)
@click.option(
    "--install/--no-install",
    default=True,
    show_default=True,
    help="Install on the nodes what they lack or hold at another version, at the client's "
    "versions, once per Python environment per host.",
)
@click.option(
    "--restart",
    is_flag=True,
    help="Restart, through their nannies, the workers still running a replaced package.",
)
@click.option("--index-url", metavar="URL", help="pip's index (else [tool.shipit] index-url).")
@click.option(
    "--extra-index-url",
    "extra_index_urls",
    metavar="URL",
    multiple=True,
    help="Another index; repeatable (else [tool.shipit] extra-index-url).",
)
@click.option(
    "--find-links",
    metavar="PATH|URL",
    multiple=True,
    help="A folder or page of wheels; repeatable (else [tool.shipit] find-links). "
    "Without --wheels-from-client, workers read it: a path must exist there.",
)
@click.option(
    "--no-index/--use-index",
    default=None,
    help="Use no package index, only --find-links (else [tool.shipit] no-index).",
)
@click.option(
    "--wheels-from-client/--wheels-from-index",
    default=None,
    help="Fetch and build the wheels here, for the workers' Python and platform, and ship "
    "them: workers install with --no-index (else [tool.shipit] wheels-from-client).",
)
@click.option(
    "--pip-timeout",
    type=click.FloatRange(min=1.0),
    help="Seconds each pip run may take (else [tool.shipit] pip-timeout, else 600).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_handles_errors
def sync(
    path: str,
    scheduler: str | None,
    timeout: float,
    dry_run: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Ship the project's code to the scheduler and every worker, then install what they lack.

    Exits 1 when a unit did not compile, a node failed, or an install failed.

    \b
    shipit sync --scheduler tcp://10.0.0.5:8786
    shipit sync --find-links ./wheels --no-index --restart
    shipit sync --wheels-from-client
    shipit sync --dry-run
    """
    options["extra_index_urls"] = options["extra_index_urls"] or None
    options["find_links"] = options["find_links"] or None
    address = scheduler and str(scheduler)
    if dry_run:
        the_plan = plan(path)
        report = None
        if options["install"] and address:
            report = sync_project(
                address, path, timeout=timeout, strict=False, dry_run=True, **options
            )
            packs, problems = code_only(the_plan)
            the_plan = dataclasses.replace(the_plan, packs=packs, problems=problems)
        elif options["install"]:
            click.echo("no scheduler given: not checking what the workers lack", err=True)
        _render_plan(the_plan, report.install if report else None, as_json)
        return
    with _Progress() as progress:
        report = sync_project(
            address, path, timeout=timeout, strict=False, on_progress=progress, **options
        )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _render_report(report)
    sys.exit(0 if report.ok else 1)


def _render_plan(the_plan: Plan, install: InstallReport | None, as_json: bool) -> None:
    if as_json:
        data = {
            "units": [
                {
                    "name": p.name,
                    "origin": p.origin,
                    "digest": p.digest,
                    "size": p.size,
                    "files": list(p.files),
                }
                for p in the_plan.packs
            ],
            "problems": [str(p) for p in the_plan.problems],
            "install": install.to_dict() if install else None,
        }
        click.echo(json.dumps(data, indent=2))
    else:
        for pack in the_plan.packs:
            origin = "" if pack.origin == "project" else f"  ({pack.origin})"
            click.echo(f"{pack.name}  {len(pack.files)} files  {_size(pack.size)}{origin}")
            for rel in pack.files:
                click.echo(f"  {rel}")
        for problem in the_plan.problems:
            click.secho(f"syntax error, would not ship: {problem}", fg="red", err=True)
        if install is not None:
            _render_install(install)
        total = sum(p.size for p in the_plan.packs)
        click.echo(f"would ship {len(the_plan.packs)} unit(s), {_size(total)}; nothing was sent")
    if the_plan.problems:
        sys.exit(1)


def _render_install(install: InstallReport) -> None:
    """One line per environment pip ran in and per worker to restart, then the summary."""
    for run in install.runs:
        click.secho(run.line(), fg="red" if run.status == "failed" else None, err=not run.ok)
    for restart in install.restarts:
        colour = {"restarted": None, "failed": "red"}.get(restart.status, "yellow")
        click.secho(restart.line(), fg=colour, err=restart.status == "failed")
    for reason in install.skipped:
        click.secho(f"skipped    {reason}", fg="yellow")
    for row in install.remaining:
        click.secho(f"differs    {row.label}: {row.suggestion}", fg="red", err=True)
    click.secho(install.summary, fg=None if install.ok else "red")


def _render_report(report: SyncReport) -> None:
    nodes = len(report.nodes)
    for unit in report.units:
        if unit.status == "shipped":
            click.echo(
                f"shipped    {unit.name}  {unit.files} files  {_size(unit.bytes_sent)} sent  "
                f"{report.confirmed}/{nodes} nodes"
            )
        elif unit.status == "removed":
            click.echo(f"removed    {unit.name}")
        elif unit.status == "not shipped":
            click.secho(
                f"not shipped {unit.name}: the cluster keeps its last good version", fg="yellow"
            )
    for problem in report.problems:
        click.secho(f"syntax error  {problem}", fg="red", err=True)
    for address, error in report.failures.items():
        click.secho(f"failed     {address}: {error}", fg="red", err=True)
    shipped = len(report.shipped)
    unchanged = sum(u.status == "unchanged" for u in report.units)
    if shipped or any(u.status == "removed" for u in report.units):
        summary = f"synced {shipped} unit(s) to {report.confirmed}/{nodes} nodes"
    elif nodes:  # nothing changed, but nodes a past sync failed on were tried again
        summary = f"nothing changed; {report.confirmed}/{nodes} lagging node(s) brought up to date"
    else:
        summary = "nothing changed; no code sent"
    click.echo(f"{summary} in {report.seconds * 1000:.0f} ms ({unchanged} unchanged)")
    if report.install is not None:
        _render_install(report.install)


@main.command()
@path_argument
@scheduler_option
@timeout_option
@workers_option
@click.option(
    "--debounce",
    type=click.FloatRange(min=0.0),
    default=10.0,
    show_default=True,
    help="Milliseconds of quiet that end a burst of file events.",
)
@_handles_errors
def watch(
    path: str, scheduler: str | None, timeout: float, n_workers: int | None, debounce: float
) -> None:
    """Ship every saved change to the cluster, until Ctrl-C.

    Without --scheduler and DASK_SCHEDULER_ADDRESS, starts a local cluster and prints
    its address, for scripts and notebooks to connect to.

    \b
    shipit watch --scheduler tcp://10.0.0.5:8786
    shipit watch --workers 4
    """
    progress = _Progress()  # until the first sync is done
    handle = Watch(
        scheduler,
        path,
        on_event=lambda event: progress.above(lambda: _echo_event(event)),
        debounce=debounce / 1000,
        timeout=timeout,
        n_workers=n_workers,
        on_progress=progress,
    )
    signal.signal(signal.SIGTERM, lambda *_: handle.stop())
    try:
        try:
            handle.start()
        finally:
            progress.close()
        click.echo(f"watching {', '.join(map(str, handle.project.watch_roots))}; Ctrl-C stops")
        handle.wait()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
        handle.stop()


def _echo_event(event: WatchEvent) -> None:
    if event.kind in ("syntax-error", "failed", "error", "disconnected"):
        click.secho(str(event), fg="red" if event.kind != "disconnected" else "yellow", err=True)
    elif event.kind != "stopped":
        click.echo(str(event))


@main.command()
@path_argument
@scheduler_option
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--all", "show_all", is_flag=True, help="List the rows that match too.")
@_handles_errors
def check(path: str, scheduler: str | None, timeout: float, as_json: bool, show_all: bool) -> None:
    """Compare Python, packages and shipped code on the client, the scheduler and every worker.

    Exits 1 when a row is at error level.

    \b
    shipit check --scheduler tcp://10.0.0.5:8786
    shipit check --json
    """
    report = parity.check(scheduler and str(scheduler), path, strict=False, timeout=timeout)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        table = report.table(everything=show_all)
        if table:
            click.echo(table)
        colour = "red" if report.errors else "yellow" if report.warnings else "green"
        click.secho(report.summary, fg=colour)
    sys.exit(0 if report.ok else 1)


from . import run as _run  # noqa: E402, F401  (registers run, status and doctor on main)
