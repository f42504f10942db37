"""``shipit check``: compare versions and shipped code on every node."""

from __future__ import annotations

import json
import sys

import click

from ..parity.check import check as check_parity
from ._common import path_argument, scheduler_option, timeout_option


@click.command()
@path_argument
@scheduler_option
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--all", "show_all", is_flag=True, help="List the rows that match too.")
def check(path: str, scheduler: str | None, timeout: float, as_json: bool, show_all: bool) -> None:
    """Compare Python, packages and shipped code on the client, the scheduler and every worker.

    Exits 1 when a row is at error level.

    \b
    shipit check --scheduler tcp://10.0.0.5:8786
    shipit check --json
    """
    report = check_parity(scheduler and str(scheduler), path, strict=False, timeout=timeout)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        table = report.table(everything=show_all)
        if table:
            click.echo(table)
        colour = "red" if report.errors else "yellow" if report.warnings else "green"
        click.secho(report.summary, fg=colour)
    sys.exit(0 if report.ok else 1)
