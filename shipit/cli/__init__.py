"""The command line: parse, call one library function, render. The only package that
imports click; each command lives in its own module, and this one only registers them.

Exit codes: 0 ok, 1 a problem found (a failed push, a syntax error), 2 usage or connection
(see :mod:`shipit.errors`).
"""

from __future__ import annotations

import logging
import warnings

import click
from distributed.versions import VersionMismatchWarning

from .. import shipper
from ._common import Group
from .check import check
from .doctor import doctor
from .forget import forget
from .run import run
from .status import status
from .sync import sync
from .watch import watch


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log more (-vv for debug).")
@click.version_option(package_name="shipit")
def main(verbose: int) -> None:
    """Ship local code to a Dask cluster and keep every node's versions in parity."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _dask_logs_only_when_verbose(verbose)
    # Dask's own table of differing versions: shipit names each difference in its own lines.
    warnings.simplefilter("ignore", VersionMismatchWarning)
    shipper.no_user_code_here()  # an embedded cluster's scheduler here serves scripts elsewhere


def _dask_logs_only_when_verbose(verbose: int) -> None:
    """Dask writes its own log lines to stderr through one handler it sets on its loggers
    (``distributed.client - ERROR - Failed to reconnect…``). shipit says what happened in
    its own lines, so Dask's show only with -v (warnings) or -vv (everything)."""
    level = {0: logging.CRITICAL + 1, 1: logging.WARNING}.get(verbose, logging.NOTSET)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.split(".")[0] in _DASK_LOGGERS:
            for handler in logger.handlers:
                handler.setLevel(level)


_DASK_LOGGERS = ("distributed", "tornado", "bokeh")


for command in (sync, watch, check, run, status, doctor, forget):
    main.add_command(command)
