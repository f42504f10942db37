"""The commands about a running cluster: run a script on it, show its state, diagnose it.

Registered on :data:`shipit.cli.main`; parsing and rendering only, like the rest of the CLI.
"""

from __future__ import annotations

import json
import signal
import sys

import click

from ..cli import (
    _handles_errors,
    _Progress,
    _render_report,
    main,
    scheduler_option,
    timeout_option,
    workers_option,
)
from ..doctor import doctor as run_doctor
from ..run import RunReport
from ..run import run as run_script
from ..status import status as read_status


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@scheduler_option
@timeout_option
@click.option(
    "--path",
    type=click.Path(exists=True, file_okay=False),
    default=".",
    show_default=True,
    help="The project to ship before the run.",
)
@workers_option
@click.option(
    "--install/--no-install",
    default=True,
    show_default=True,
    help="Install on the nodes what they lack, as `shipit sync` does.",
)
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@_handles_errors
def run(
    scheduler: str | None,
    timeout: float,
    path: str,
    n_workers: int | None,
    install: bool,
    script: str,
    args: tuple[str, ...],
) -> None:
    """Sync, check parity, then run SCRIPT with DASK_SCHEDULER_ADDRESS set; exit with its code.

    shipit's options come before SCRIPT; everything after it goes to the script. Without a
    scheduler, a local cluster runs for the script's lifetime. Refuses to run (exit 1) when
    the code did not reach every node or the versions differ.

    \b
    shipit run search.py --trials 500
    shipit run --scheduler tcp://10.0.0.5:8786 --path ~/proj train.py --epochs 3
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up the cluster on TERM
    with _Progress() as progress:
        report = run_script(
            script,
            args,
            scheduler,
            path,
            timeout=timeout,
            n_workers=n_workers,
            install=install,
            on_progress=progress,
            on_ready=lambda ready: _ready(ready, progress),
        )
    if report.refused:
        _refused(report)
        sys.exit(1)
    sys.exit(report.returncode)


def _ready(report: RunReport, progress: _Progress) -> None:
    """Before the script: one line on stderr, leaving its stdout to the script alone."""
    progress.close()  # the script owns the terminal now
    if report.cluster:
        click.echo(f"cluster  {report.cluster}", err=True)
    shipped = ", ".join(u.name for u in report.sync.shipped) or "nothing new"
    nodes = len(report.sync.nodes)
    click.echo(
        f"ready    shipped {shipped} to {report.sync.confirmed}/{nodes} nodes; versions in "
        f"parity; running with DASK_SCHEDULER_ADDRESS={report.scheduler}",
        err=True,
    )


def _refused(report: RunReport) -> None:
    if not report.sync.ok:
        _render_report(report.sync)
    elif report.parity is not None:
        click.echo(report.parity.table(), err=True)
        click.secho(report.parity.summary, fg="red", err=True)
    click.secho("not run: fix the above, or see `shipit check`", fg="red", err=True)


@main.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False), default=".", required=False)
@scheduler_option
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_handles_errors
def status(path: str, scheduler: str | None, timeout: float, as_json: bool) -> None:
    """What each node runs: shipped units and their digests (behind the files at PATH or
    not), Python, Dask's versions, nanny, local directory.

    \b
    shipit status --scheduler tcp://10.0.0.5:8786
    shipit status --json
    """
    report = read_status(scheduler and str(scheduler), path, timeout=timeout)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    for line, stands_out in report.lines():
        click.secho(line, fg="red" if stands_out else None)
    click.secho(report.summary, fg="yellow" if report.behind else "green")


@main.command()
@scheduler_option
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_handles_errors
def doctor(scheduler: str | None, timeout: float, as_json: bool) -> None:
    """Check what a long run needs: scheduler, workers, Python, worker-to-worker connections,
    dashboard, disk, memory limits, nannies. Exits 1 when a check failed.

    \b
    shipit doctor --scheduler tcp://10.0.0.5:8786
    """
    report = run_doctor(scheduler and str(scheduler), timeout=timeout)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        colours = {"ok": "green", "warning": "yellow", "failed": "red"}
        for line, level in report.lines():
            click.secho(line, fg=colours[level])
        click.echo(report.summary)
    sys.exit(0 if report.ok else 1)
