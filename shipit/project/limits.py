"""Size limits: a unit too large to ship is refused before anything is sent.

``[tool.shipit] max-unit-size`` (default 100 MiB) refuses a unit; ``warn-file-size`` (default
10 MiB) logs a warning naming each larger file. Both take bytes, or a string with a unit:
``"100MiB"``, ``"20 MB"``, ``"512kB"``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..config import Config
from ..errors import TooLarge
from ..text import size_text
from .pack import Pack

logger = logging.getLogger(__name__)

_SHOWN = 5  # offenders named in a message, largest first
_warned: set[tuple[str, int]] = set()


def check_sizes(packs: Sequence[Pack], config: Config) -> None:
    """Raise :class:`TooLarge` when a unit is over ``config.max_unit_size``; warn once per
    file over ``config.warn_file_size``.

    Example::

        check_sizes(plan.packs, dataclasses.replace(config, max_unit_size=1024))
        # Traceback (most recent call last):
        # shipit.errors.TooLarge: too large to ship, nothing was sent: data (2.0 MiB); ...
    """
    too_large = sorted(
        ((p.name, p.size) for p in packs if p.size > config.max_unit_size), key=lambda u: -u[1]
    )
    big_files = sorted(
        (
            (rel, size)
            for p in packs
            if p.size > config.warn_file_size  # else no file of it can be
            for rel, size in _file_sizes(p)
            if size > config.warn_file_size
        ),
        key=lambda f: -f[1],
    )
    if too_large:
        names = {name for name, _ in too_large}
        largest = sorted(
            (f for p in packs if p.name in names for f in _file_sizes(p)), key=lambda f: -f[1]
        )
        raise TooLarge(too_large, config.max_unit_size, largest[:_SHOWN])
    new = [f for f in big_files if f not in _warned]
    if new:
        _warned.update(new)
        named = ", ".join(f"{rel} ({size_text(size)})" for rel, size in new[:_SHOWN])
        more = f" and {len(new) - _SHOWN} more" if len(new) > _SHOWN else ""
        logger.warning(
            "large file(s) ship to every node: %s%s (over [tool.shipit] warn-file-size, %s)",
            named, more, size_text(config.warn_file_size),
        )  # fmt: skip


def _file_sizes(pack: Pack) -> list[tuple[str, int]]:
    return list(pack.file_sizes.items())
