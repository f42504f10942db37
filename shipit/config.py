"""``[tool.shipit]`` from the project's pyproject.toml, checked and turned into a value."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_LISTS = ("include", "exclude", "ignore", "extra_packages")
_SEVERITIES = ("error", "warning")
KNOWN_KEYS = frozenset((*_LISTS, "severity"))


@dataclass(frozen=True)
class Config:
    """Settings for one project. Command-line options override these."""

    root: Path
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()  # distributions `shipit check` does not compare
    extra_packages: tuple[str, ...] = ()  # distributions it compares beyond the imported ones
    severity: Mapping[str, str] = field(default_factory=dict, hash=False)  # name -> error/warning
    pyproject: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def read_pyproject(root: Path) -> dict[str, Any]:
    """The parsed pyproject.toml in ``root``, or an empty dict when there is none."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None


def load_config(root: str | Path = ".") -> Config:
    """Read ``[tool.shipit]`` from ``root/pyproject.toml``.

    >>> load_config("examples/montecarlo").include
    ()
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise ConfigError(f"project folder not found: {root}")
    pyproject = read_pyproject(root)
    table = pyproject.get("tool", {}).get("shipit", {})
    if not isinstance(table, dict):
        raise ConfigError("[tool.shipit] in pyproject.toml must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in KNOWN_KEYS:
            close = difflib.get_close_matches(name, sorted(KNOWN_KEYS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key [tool.shipit] {key!r}{hint}")
        if name == "severity":
            values[name] = _severity(key, value)
            continue
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"[tool.shipit] {key} must be a list of strings, not {value!r}")
        values[name] = tuple(value)
    return Config(root=root, pyproject=pyproject, **values)


def _severity(key: str, value: object) -> dict[str, str]:
    """``severity = { numpy = "warning" }``: how much a difference in that package matters."""
    if not (isinstance(value, dict) and all(v in _SEVERITIES for v in value.values())):
        raise ConfigError(
            f'[tool.shipit] {key} must map package names to "error" or "warning", not {value!r}'
        )
    return dict(value)
