"""``[tool.shipit]`` from the project's pyproject.toml, checked and turned into a value."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_LISTS: tuple[str, ...] = ("include", "exclude", "ignore", "extra_packages")
_LISTS += ("extra_index_url", "find_links", "build_wheels")
_STRINGS = ("index_url",)
_BOOLS = ("no_index", "wheels_from_client", "install_project")
_NUMBERS = ("pip_timeout",)
_SIZES = ("max_unit_size", "warn_file_size")
_NAMES = ("extra_packages", "ignore")  # distributions, checked as such
_SEVERITIES = ("error", "warning")
KNOWN_KEYS = frozenset((*_LISTS, *_STRINGS, *_BOOLS, *_NUMBERS, *_SIZES, "severity"))
MiB = 2**20
DEFAULT_TIMEOUT = 10.0  # seconds for the scheduler, and the cluster's probes, to answer
DEFAULT_PIP_TIMEOUT = 600.0  # seconds each pip run may take


@dataclass(frozen=True)
class Config:
    """Settings for one project. Command-line options override these."""

    root: Path
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()  # distributions `shipit check` does not compare
    extra_packages: tuple[str, ...] = ()  # distributions it compares beyond the imported ones
    severity: Mapping[str, str] = field(default_factory=dict, hash=False)  # name -> error/warning
    # How `shipit sync` installs what workers lack (see shipit.install).
    index_url: str | None = None
    extra_index_url: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()  # paths are relative to the project folder
    no_index: bool = False
    wheels_from_client: bool = False  # the client fetches wheels; workers use no index
    build_wheels: tuple[str, ...] = ()  # local projects to build and install, not ship as code
    install_project: bool = False  # build and install this project itself, not ship it
    pip_timeout: float | None = None
    max_unit_size: int = 100 * MiB  # a larger unit is refused before anything is sent
    warn_file_size: int = 10 * MiB  # a larger file ships, with a warning
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
    if root.is_file():
        raise ConfigError(
            f"{root} is a file, not a project folder", tip="pass the folder that holds your code"
        )
    if not root.is_dir():
        raise ConfigError(f"project folder not found: {root}")
    pyproject = read_pyproject(root)
    tool = pyproject.get("tool", {})
    table = tool.get("shipit", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise ConfigError("[tool.shipit] in pyproject.toml must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in KNOWN_KEYS:
            close = difflib.get_close_matches(name, sorted(KNOWN_KEYS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key [tool.shipit] {key!r}{hint}")
        values[name] = _value(name, key, value)
    return Config(root=root, pyproject=pyproject, **values)


def _value(name: str, key: str, value: object) -> Any:
    """One ``[tool.shipit]`` value, checked against the type its key takes."""
    if name == "severity":
        return _severity(key, value)
    if name in _STRINGS:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"[tool.shipit] {key} must be a non-empty string, not {value!r}")
        return value
    if name in _BOOLS:
        if not isinstance(value, bool):
            raise ConfigError(f"[tool.shipit] {key} must be true or false, not {value!r}")
        return value
    if name in _SIZES:
        size = parse_size(value)
        if size is None:
            raise ConfigError(
                f"[tool.shipit] {key} must be a size: a number of bytes or a string such as "
                f'"100MiB" or "20 MB", not {value!r}'
            )
        return size
    if name in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"[tool.shipit] {key} must be a number of seconds, not {value!r}")
        return float(value)
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"[tool.shipit] {key} must be a list of strings, not {value!r}")
    if name in _NAMES:
        for text in value:
            _check_requirement(key, text, name_only=name == "ignore")
    return tuple(value)


def _check_requirement(key: str, text: str, *, name_only: bool) -> None:
    """A distribution name (``ignore``) or a requirement (``extra-packages``): never an option
    or anything else pip or a shell could read another way."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement as e:
        reason = (str(e).splitlines() or ["invalid"])[0]  # packaging adds a caret diagram
        raise ConfigError(f"[tool.shipit] {key}: {text!r} is not a requirement: {reason}") from None
    if name_only and str(requirement) != requirement.name:
        raise ConfigError(f"[tool.shipit] {key}: {text!r} is not a distribution name")


def _severity(key: str, value: object) -> dict[str, str]:
    """``severity = { numpy = "warning" }``: how much a difference in that package matters."""
    if not (isinstance(value, dict) and all(v in _SEVERITIES for v in value.values())):
        raise ConfigError(
            f'[tool.shipit] {key} must map package names to "error" or "warning", not {value!r}'
        )
    return dict(value)


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*", re.IGNORECASE)
_FACTORS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9}
_FACTORS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30})


def parse_size(value: object) -> int | None:
    """Bytes from an integer or a string such as "100MiB" or "20 MB"; None if it is neither.

    >>> parse_size("1.5 KiB"), parse_size(2048), parse_size("ten")
    (1536, 2048, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if not isinstance(value, str) or not (match := _SIZE.fullmatch(value)):
        return None
    size = int(float(match[1]) * _FACTORS[(match[2] or "b").lower()])
    return size if size > 0 else None
