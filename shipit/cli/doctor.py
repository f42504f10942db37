"""``shipit doctor``: the checks a cluster needs before a long run."""

from __future__ import annotations

import json
import sys

import click

from ..doctor import doctor as run_doctor
from ._common import scheduler_option, timeout_option


@click.command()
@scheduler_option
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
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
