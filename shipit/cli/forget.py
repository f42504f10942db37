"""``shipit forget``: remove shipped units from the scheduler and every node."""

from __future__ import annotations

import json
import sys

import click

from ..sync import forget as forget_units
from ._common import scheduler_option, timeout_option


@click.command()
@click.argument("units", nargs=-1, required=True)
@scheduler_option
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def forget(units: tuple[str, ...], scheduler: str | None, timeout: float, as_json: bool) -> None:
    """Remove the named UNITS, of whichever project, from the scheduler and every worker.

    Tasks there can no longer import them; a later sync of their project ships them again.
    Exits 1 when a node did not take the removal.

    \b
    shipit forget oldlib --scheduler tcp://10.0.0.5:8786
    shipit status        # lists the units the nodes hold
    """
    report = forget_units(scheduler and str(scheduler), units, timeout=timeout, strict=False)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for unit in report.units:
            click.echo(f"removed    {unit.name}")
        for address, error in report.failures.items():
            click.secho(f"failed     {address}: {error}", fg="red", err=True)
        click.echo(
            f"forgot {len(report.units)} unit(s) on {report.confirmed}/{len(report.nodes)} nodes"
            f" in {report.seconds * 1000:.0f} ms"
        )
    sys.exit(0 if report.ok else 1)
