"""``shipit sync``: ship the project once, install what the nodes lack; or show the plan."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..project.plan import Plan, plan
from ..report import InstallReport
from ..sync import preview
from ..sync import sync as sync_project
from ..text import names
from ._common import (
    Progress,
    path_argument,
    pip_options,
    render_install,
    render_notes,
    render_report,
    scheduler_option,
    size,
    timeout_option,
)


@click.command()
@path_argument
@scheduler_option
@timeout_option
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would ship and, given a scheduler, what would be installed where; "
    "change nothing.",
)
@pip_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
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
    address = scheduler and str(scheduler)
    if dry_run:
        install = options.pop("install")
        del options["restart"]  # a dry run restarts nothing
        would_install: InstallReport | None = None
        if install and address:
            the_plan, would_install = preview(address, path, timeout=timeout, **options)
        else:
            the_plan = plan(path)
            if install:
                click.echo("no scheduler given: not checking what the workers lack", err=True)
        _render_plan(the_plan, would_install, as_json)
        return
    with Progress() as progress:
        report = sync_project(
            address, path, timeout=timeout, strict=False, on_progress=progress, **options
        )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_report(report)
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
            "held_back": [{"path": str(path), "why": why} for path, why in the_plan.held_back],
            "readmitted": [{"path": str(path), "why": why} for path, why in the_plan.readmitted],
            "computed_imports": list(the_plan.computed_imports),
            "install": install.to_dict() if install else None,
        }
        click.echo(json.dumps(data, indent=2))
    else:
        for pack in the_plan.packs:
            origin = "" if pack.origin == "project" else f"  ({pack.origin})"
            click.echo(f"{pack.name}  {len(pack.files)} files  {size(pack.size)}{origin}")
            for rel in pack.files:
                click.echo(f"  {rel}")
        render_notes(the_plan.held_back, the_plan.readmitted)
        if the_plan.computed_imports:
            click.echo(reload_note(the_plan.computed_imports))
        for problem in the_plan.problems:
            click.secho(f"syntax error, would not ship: {problem}", fg="red", err=True)
        if install is not None:
            render_install(install)
        total = sum(p.size for p in the_plan.packs)
        click.echo(f"would ship {len(the_plan.packs)} unit(s), {size(total)}; nothing was sent")
    if the_plan.problems:
        sys.exit(1)


def reload_note(modules: tuple[str, ...]) -> str:
    """One line: the modules a save reloads with any change in their unit."""
    units = ", ".join(sorted({m.partition(".")[0] for m in modules}))
    return (
        f"reloads    {names(modules)}: imports by computed names, so a save anywhere in "
        f"{units} reloads {'it' if len(modules) == 1 else 'each'} and its importers"
    )
