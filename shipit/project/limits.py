"""What may not ship as code, refused before anything is sent: a unit too large, and a
unit with compiled parts.

``[tool.shipit] max-unit-size`` (default 100 MiB) refuses a unit; ``warn-file-size`` (default
10 MiB) logs a warning naming each larger file. Both take bytes, or a string with a unit:
``"100MiB"``, ``"20 MB"``, ``"512kB"``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence

from packaging.utils import canonicalize_name

from ..config import Config
from ..errors import CompiledUnit, TooLarge
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


# Compiled extensions, and their sources once the build declares extensions.
_COMPILED = (".so", ".pyd", ".dylib", ".pyx")
_EXTENSION_SOURCES = (".c", ".cc", ".cpp", ".cxx", ".pyx", ".pxd")
# Builds that compile: setup.py with Extension(...) / ext_modules, or one of these backends.
_COMPILING_BACKENDS = re.compile(
    r"^(cython|scikit-build|scikit-build-core|meson-python|maturin|setuptools-rust|cffi|"
    r"pybind11|nanobind|py-build-cmake)\b", re.I
)  # fmt: skip


def check_compiled(packs: Sequence[Pack], config: Config) -> None:
    """Raise :class:`CompiledUnit` when a unit that ships as code has compiled parts: shipped
    as source it would hide the compiled copy installed on the nodes (or lack it). Units the
    config builds into wheels (``install-project``, ``build-wheels``) are not shipped as code.
    """
    declares = _declares_extensions(config)
    wheels = {canonicalize_name(n) for n in config.build_wheels}
    found = []
    for pack in packs:
        if pack.origin == "project" and config.install_project:
            continue
        if pack.origin.startswith("editable:") and canonicalize_name(pack.origin[9:]) in wheels:
            continue
        suffixes = (
            _EXTENSION_SOURCES + _COMPILED if pack.origin == "project" and declares else _COMPILED
        )
        files = [f for f in pack.files if f.endswith(suffixes) and ".dist-info/" not in f]
        if files:
            found.append((pack.name, pack.origin, tuple(files)))
    if found:
        raise CompiledUnit(found)


def _declares_extensions(config: Config) -> bool:
    build_system = config.pyproject.get("build-system", {})
    requires = build_system.get("requires", []) if isinstance(build_system, dict) else []
    if any(isinstance(r, str) and _COMPILING_BACKENDS.match(r.strip()) for r in requires):
        return True
    setuptools = config.pyproject.get("tool", {}).get("setuptools", {})
    if isinstance(setuptools, dict) and setuptools.get("ext-modules"):
        return True
    setup_py = config.root / "setup.py"
    try:
        text = (
            setup_py.read_text(encoding="utf-8", errors="replace")
            if os.path.isfile(setup_py)
            else ""
        )
    except OSError:
        return False
    return "Extension(" in text or "ext_modules" in text
