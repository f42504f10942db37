"""``[tool.shipit]`` from the project's pyproject.toml, checked and turned into a value; and
:class:`Options`, those settings with the caller's overrides, resolved once per command."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import urlparse

from packaging.requirements import InvalidRequirement, Requirement

from .errors import BadPipOption, ConfigError

if TYPE_CHECKING:
    from typing_extensions import Unpack

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_LISTS: tuple[str, ...] = ("include", "exclude", "ignore", "extra_packages")
_LISTS += ("extra_index_url", "find_links", "build_wheels", "extras")
_STRINGS = ("index_url",)
_BOOLS = ("no_index", "wheels_from_client", "install_project")
_NUMBERS = ("pip_timeout",)
_SIZES = ("max_unit_size", "warn_file_size")
_NAMES = ("extra_packages", "ignore")  # distributions, checked as such
_SEVERITIES = ("error", "warning")
KNOWN_KEYS = frozenset((*_LISTS, *_STRINGS, *_BOOLS, *_NUMBERS, *_SIZES, "severity"))
MiB = 2**20
_URL_SCHEMES = ("http", "https", "file")
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
    extras: tuple[str, ...] = ()  # [project.optional-dependencies] groups nodes must have
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


class PipWhere(TypedDict, total=False):
    """Where pip looks, as a caller overrides ``[tool.shipit]``: None or absent keeps it."""

    index_url: str | None
    extra_index_urls: Sequence[str] | None
    find_links: Sequence[str] | None
    no_index: bool | None


class PipOverrides(PipWhere, total=False):
    """The pip settings :func:`shipit.sync` and :func:`shipit.install` take as keywords."""

    wheels_from_client: bool | None  # fetch the wheels on the client; workers use no index
    pip_timeout: float | None  # seconds each pip run may take


@dataclass(frozen=True)
class PipOptions:
    """Where pip looks for packages: passed to pip on the nodes, or to ``pip download``."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    def __post_init__(self) -> None:
        for option, value in self._values():
            _check_option(option, value)

    def _values(self) -> Iterable[tuple[str, str]]:
        yield from (("--index-url", v) for v in [self.index_url] if v is not None)
        yield from (("--extra-index-url", v) for v in self.extra_index_urls)
        yield from (("--find-links", v) for v in self.find_links)

    def args(self) -> list[str]:
        """pip's command-line options, ``--no-index`` first."""
        args = ["--no-index"] if self.no_index else []
        for option, value in self._values():
            args += [option, value]
        return args

    @classmethod
    def resolve(cls, config: Config, **given: Unpack[PipWhere]) -> PipOptions:
        """Each option as given, else ``[tool.shipit]``'s; relative paths become absolute.

        Example::

            PipOptions.resolve(config, find_links=["wheels"]).args()
            # ['--find-links', '/home/me/project/wheels']
        """
        if find_links := given.get("find_links"):
            links = tuple(_local(v, Path.cwd()) for v in find_links)
        else:
            links = tuple(_local(v, config.root) for v in config.find_links)
        no_index = given.get("no_index")
        return cls(
            index_url=given.get("index_url") or config.index_url,
            extra_index_urls=tuple(given.get("extra_index_urls") or config.extra_index_url),
            find_links=links,
            no_index=config.no_index if no_index is None else no_index,
        )


def _local(value: str, base: Path) -> str:
    """A find-links path made absolute (nodes run elsewhere); URLs stay as they are."""
    if urlparse(value).scheme in _URL_SCHEMES:
        return value
    return str((base / value).resolve())


def _check_option(option: str, value: str) -> None:
    if not value or value.startswith("-") or any(c in value for c in "\r\n\0"):
        raise BadPipOption(option, value, "not a URL or a path")
    scheme = urlparse(value).scheme
    if option != "--find-links" and scheme not in _URL_SCHEMES:
        raise BadPipOption(option, value, "an index must be an http, https or file URL")


@dataclass(frozen=True)
class Options:
    """One command's settings: ``[tool.shipit]`` with the caller's overrides, resolved once at
    the top of :func:`shipit.sync`, :func:`shipit.install` and :func:`shipit.run` and passed
    down, so nothing below reads pyproject.toml again.

    ``pip`` is where pip looks (checked only when something installs); ``wheels_from_client``
    fetches the wheels on the client; ``pip_timeout`` bounds each pip run; ``timeout`` the
    scheduler's and the probes' answers.
    """

    config: Config
    timeout: float = DEFAULT_TIMEOUT
    pip: PipOptions = field(default_factory=lambda: PipOptions())
    wheels_from_client: bool = False
    pip_timeout: float = DEFAULT_PIP_TIMEOUT

    @classmethod
    def resolve(
        cls,
        config: Config,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        install: bool = True,
        **overrides: Unpack[PipOverrides],
    ) -> Options:
        """Each value as given, else ``[tool.shipit]``'s, else the default. Without
        ``install`` the pip options are not read, so a bad one fails only what installs.

        >>> Options.resolve(load_config("examples/montecarlo"), pip_timeout=60).pip_timeout
        60.0
        """
        wheels_from_client = overrides.get("wheels_from_client")
        pip_timeout = overrides.get("pip_timeout")
        where: PipWhere = {k: v for k, v in overrides.items() if k in PipWhere.__annotations__}  # type: ignore[assignment]
        pip = PipOptions.resolve(config, **where) if install else PipOptions()
        return cls(
            config=config,
            timeout=timeout,
            pip=pip,
            wheels_from_client=(
                config.wheels_from_client if wheels_from_client is None else wheels_from_client
            ),
            pip_timeout=float(pip_timeout or config.pip_timeout or DEFAULT_PIP_TIMEOUT),
        )
