"""What every command shares: the options, the error protocol, the status line, the sync
report's rendering.

Errors reach the user through click's own protocol: a :class:`shipit.ShipitError` becomes a
:class:`Failure` and click's usage errors a :class:`BadUsage`, both ``ClickException``s
whose ``show()`` prints one ``ERROR`` line and a ``TIP`` line; click then exits with the
error's code (1 a problem found, 2 usage, configuration or connection).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import click

from ..config import DEFAULT_TIMEOUT
from ..errors import ShipitError
from ..report import InstallReport, SyncReport
from ..text import shown_path, size_text

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


class Failure(click.ClickException):
    """A :class:`ShipitError`, shown as ``ERROR …`` and ``TIP …``, exiting with its code."""

    def __init__(self, error: ShipitError) -> None:
        super().__init__(str(error))
        self.error = error
        self.exit_code = error.exit_code  # type: ignore[misc]  # click reads it per instance

    def show(self, file: IO[Any] | None = None) -> None:
        click.secho(f"ERROR {self.error}", fg="red", err=True)
        if self.error.tip:
            click.echo(f"TIP   {self.error.tip}", err=True)


class BadUsage(click.ClickException):
    """Click's own usage errors (an unknown option, a bad value) in shipit's one-line form."""

    exit_code = click.UsageError.exit_code

    def __init__(self, error: click.UsageError) -> None:
        super().__init__(error.format_message())
        self.error = error

    def show(self, file: IO[Any] | None = None) -> None:
        command = self.error.ctx.command_path if self.error.ctx is not None else "shipit"
        click.secho(f"ERROR {self.error.format_message()}", fg="red", err=True)
        click.echo(f"TIP   see {command} --help", err=True)


@contextlib.contextmanager
def _as_click_errors() -> Iterator[None]:
    try:
        yield
    except ShipitError as e:
        raise Failure(e) from None
    except _NO_ARGS_IS_HELP:  # plain `shipit`: the help, as click shows it
        raise
    except click.UsageError as e:
        raise BadUsage(e) from None


class Group(click.Group):
    """The ``shipit`` group: parsing and every command run under :func:`_as_click_errors`,
    and click's standalone mode does the rest (show, exit code, ``Aborted!``)."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _as_click_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with _as_click_errors():
            return super().invoke(ctx)


def size(n: int) -> str:
    return size_text(n, binary=False)


def render_install(install: InstallReport) -> None:
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


def render_notes(
    held_back: Iterable[tuple[str | Path, str]], readmitted: Iterable[tuple[str | Path, str]]
) -> None:
    """The files of units that never ship, and those that ship though .gitignore lists them."""
    for path, why in held_back:
        click.echo(f"held back  {shown_path(path)}: {why}")
    for path, why in readmitted:
        click.echo(f"ships too  {shown_path(path)}: {why}")


def render_report(report: SyncReport) -> None:
    nodes = len(report.nodes)
    for unit in report.units:
        if unit.status == "shipped":
            click.echo(
                f"shipped    {unit.name}  {unit.files} files  {size(unit.bytes_sent)} sent  "
                f"{report.confirmed}/{nodes} nodes"
            )
        elif unit.status == "removed":
            click.echo(f"removed    {unit.name}")
        elif unit.status == "not shipped":
            click.secho(
                f"not shipped {unit.name}: the cluster keeps its last good version", fg="yellow"
            )
    render_notes(report.held_back, report.readmitted)
    for note in report.notes:
        click.secho(f"note       {note}", fg="yellow")
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
        render_install(report.install)


class Progress:
    """One status line on a terminal's stderr, rewritten per step and erased at the end;
    nothing at all when stderr is not a terminal (logs, CI, pipes). The time ticks while a
    step runs, so a long pip install shows it is alive."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.started = time.monotonic()
        self.step: str | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, step: str) -> None:
        if self.live:
            self.step = step
            self._draw()
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, daemon=True)
                self._ticker.start()

    def _tick(self) -> None:
        while not self._done.wait(0.5):
            self._draw()

    def _draw(self) -> None:
        with self._lock:
            if self.live and self.step is not None:
                elapsed = time.monotonic() - self.started
                sys.stderr.write(f"\r\x1b[K{self.step}... ({elapsed:.1f} s)")
                sys.stderr.flush()

    def above(self, show: Callable[[], None]) -> None:
        """Print something (``show`` prints it) above the status line, which stays."""
        with self._lock:
            if self.live and self.step is not None:
                sys.stderr.write("\r\x1b[K")
            show()
        self._draw()

    def close(self) -> None:
        """Erase the line; draw nothing more."""
        self._done.set()
        with self._lock:
            if self.live and self.step is not None:
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()
            self.live = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


STOP_GRACE = 0.8  # seconds a command that was told to stop may take to close what it opened


class _Stoppable(Protocol):
    def stop(self, timeout: float = ...) -> bool: ...


@contextlib.contextmanager
def stops_on_signals(handle: _Stoppable) -> Iterator[None]:
    """SIGINT and SIGTERM ask ``handle`` to stop, whatever this process inherited: a
    background job of a shell script starts with SIGINT ignored, and Ctrl-C must still stop
    it. A second signal while stopping exits at once."""

    def stop(signum: int, _frame: object) -> None:
        if asked:
            quit_now(128 + signum)
        asked.append(signum)
        handle.stop(0)

    asked: list[int] = []
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def quit_now(code: int) -> None:
    """Exit without waiting for threads blocked on the network (what is printed stays)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def pip_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--install/--no-install``, ``--restart`` and pip's settings, for sync and watch;
    repeatable ones left out come through as None (``[tool.shipit]`` then decides)."""
    options = [
        click.option(
            "--install/--no-install",
            default=True,
            show_default=True,
            help="Install on the nodes what they lack or hold at another version, at the client's "
            "versions, once per Python environment per host.",
        ),
        click.option(
            "--restart",
            is_flag=True,
            help="Restart, through their nannies, the workers still running a replaced package.",
        ),
        click.option(
            "--index-url", metavar="URL", help="pip's index (else [tool.shipit] index-url)."
        ),
        click.option(
            "--extra-index-url",
            "extra_index_urls",
            metavar="URL",
            multiple=True,
            help="Another index; repeatable (else [tool.shipit] extra-index-url).",
        ),
        click.option(
            "--find-links",
            metavar="PATH|URL",
            multiple=True,
            help="A folder or page of wheels; repeatable (else [tool.shipit] find-links). "
            "Without --wheels-from-client, workers read it: a path must exist there.",
        ),
        click.option(
            "--no-index/--use-index",
            default=None,
            help="Use no package index, only --find-links (else [tool.shipit] no-index).",
        ),
        click.option(
            "--wheels-from-client/--wheels-from-index",
            default=None,
            help="Fetch and build the wheels here, for the workers' Python and platform, and ship "
            "them: workers install with --no-index (else [tool.shipit] wheels-from-client).",
        ),
        click.option(
            "--pip-timeout",
            type=click.FloatRange(min=1.0),
            help="Seconds each pip run may take (else [tool.shipit] pip-timeout, else 600).",
        ),
    ]

    @functools.wraps(command)
    def with_pip(**kwargs: Any) -> Any:
        kwargs["extra_index_urls"] = kwargs["extra_index_urls"] or None
        kwargs["find_links"] = kwargs["find_links"] or None
        return command(**kwargs)

    for option in reversed(options):
        with_pip = option(with_pip)
    return with_pip
