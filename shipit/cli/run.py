"""``shipit run``: sync, check parity, then run a script against the cluster."""

from __future__ import annotations

import signal
import sys

import click

from ..run import RunReport
from ..run import run as run_script
from ._common import Progress, render_report, scheduler_option, timeout_option, workers_option


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
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
    with Progress() as progress:
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


def _ready(report: RunReport, progress: Progress) -> None:
    """Before the script: one line on stderr, leaving its stdout to the script alone."""
    progress.close()  # the script owns the terminal now
    if report.cluster:
        click.echo(f"cluster  {report.cluster}", err=True)
    sync = report.sync
    shipped = ", ".join(u.name for u in sync.shipped)
    held = ", ".join(u.name for u in sync.units) or "nothing to ship"
    what = f"shipped {shipped}, {sync.where_current}" if shipped else f"{held} {sync.where_current}"
    click.echo(
        f"ready    {what}; versions in parity; running with "
        f"DASK_SCHEDULER_ADDRESS={report.scheduler}",
        err=True,
    )


def _refused(report: RunReport) -> None:
    if not report.sync.ok:
        render_report(report.sync)
    elif report.parity is not None:
        click.echo(report.parity.table(), err=True)
        click.secho(report.parity.summary, fg="red", err=True)
    click.secho("not run: fix the above, or see `shipit check`", fg="red", err=True)
