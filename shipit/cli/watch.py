"""``shipit watch``: ship every saved change, until Ctrl-C."""

from __future__ import annotations

from typing import Any

import click

from ..watch import Watch, WatchEvent
from ._common import (
    STOP_GRACE,
    Progress,
    path_argument,
    pip_options,
    quit_now,
    scheduler_option,
    stops_on_signals,
    timeout_option,
    workers_option,
)


@click.command()
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
@pip_options
def watch(
    path: str,
    scheduler: str | None,
    timeout: float,
    n_workers: int | None,
    debounce: float,
    **pip: Any,
) -> None:
    """Ship every saved change to the cluster, until Ctrl-C; install what it comes to need.

    Without --scheduler and DASK_SCHEDULER_ADDRESS, starts a local cluster and prints
    its address, for scripts and notebooks to connect to. A save whose code needs a
    distribution some nodes lack (or hold at another version) installs it there at the
    client's version, in the background, as `shipit sync` would.

    \b
    shipit watch --scheduler tcp://10.0.0.5:8786
    shipit watch --workers 4
    shipit watch --find-links ./wheels --no-index
    """
    progress = Progress()  # until the first sync is done
    handle = Watch(
        scheduler,
        path,
        on_event=lambda event: progress.above(lambda: _echo_event(event)),
        debounce=debounce / 1000,
        timeout=timeout,
        n_workers=n_workers,
        on_progress=progress,
        **pip,
    )
    with stops_on_signals(handle):
        try:
            handle.start()
        finally:
            progress.close()
        if not handle.stopping:
            roots = ", ".join(map(str, handle.project.watch_roots))
            click.echo(f"watching {roots}; Ctrl-C stops")
        while not handle.wait(0.2) and not handle.stopping:
            pass
        if not handle.stop(STOP_GRACE):
            # Blocked on a scheduler that does not answer: exit now. The local cluster's
            # worker processes end with this one (each watches its parent's pipe).
            quit_now(0)


def _echo_event(event: WatchEvent) -> None:
    if event.kind in ("syntax-error", "failed", "error", "disconnected"):
        click.secho(str(event), fg="red" if event.kind != "disconnected" else "yellow", err=True)
    elif event.kind != "stopped":
        click.echo(str(event))
