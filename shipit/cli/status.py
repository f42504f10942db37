"""``shipit status``: what each node runs, next to the project's files."""

from __future__ import annotations

import json

import click

from ..status import status as read_status
from ._common import scheduler_option, timeout_option


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False), default=".", required=False)
@scheduler_option
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
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
    click.echo("")
    for line in report.held_lines():
        click.echo(line)
    click.secho(report.summary, fg="yellow" if report.behind else "green")
