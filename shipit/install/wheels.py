"""Wheels made on the client: local projects built with ``build``, and wheels fetched with
``pip download`` for another node's Python and platform.

A local project is a folder with a build backend that workers need installed (entry points,
compiled extensions, package metadata), not shipped as code: a path requirement in
``[project] dependencies`` (``mylib @ file:///home/me/mylib``), a project named in
``[tool.shipit] build-wheels``, or the project itself with ``install-project = true``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import build
import build.env
import pyproject_hooks
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from ..config import Config, PipOptions, read_pyproject
from ..errors import BuildFailed, ConfigError, DownloadFailed
from ..node.pip import pip_error
from ..project.metadata import installed_from

if TYPE_CHECKING:
    from ..project.pack import Pack
    from ..project.plan import Plan
    from ..report import SyntaxProblem

logger = logging.getLogger(__name__)
_OUTPUT_CHARS = 600


@dataclass(frozen=True)
class LocalProject:
    """A project folder whose wheel workers install; ``version`` when pyproject.toml states it."""

    name: str  # canonical distribution name
    folder: Path
    why: str
    version: str | None = None


def local_projects(config: Config) -> tuple[list[LocalProject], list[str]]:
    """The local projects to build and install, and why some dependencies were left alone.

    Example::

        local_projects(load_config("."))[0]
        # [LocalProject(name='mylib', folder=PosixPath('/home/me/mylib'), why='path dependency')]
    """
    found: dict[str, LocalProject] = {}
    skipped: list[str] = []
    if config.install_project:
        name = _static(config.pyproject, "name")
        if name is None and (here := installed_from(config.root)) is not None:
            name = here.metadata["Name"]  # a setup.py project, installed with pip install -e
        if name is None:
            raise ConfigError(
                "install-project needs a [project] name in pyproject.toml",
                tip="add one, or pip install -e the project here so that its name is known",
            )
        own = _project(name, config.root, "install-project", config.pyproject)
        found[canonicalize_name(name)] = own
    for requirement in _path_dependencies(config, skipped):
        folder = _file_url_path(str(requirement.url), config.root)
        found.setdefault(
            canonicalize_name(requirement.name),
            _project(requirement.name, folder, "path dependency"),
        )
    for entry in config.build_wheels:
        project = _named_project(entry, config.root)
        found.setdefault(project.name, project)
    return sorted(found.values(), key=lambda p: p.name), skipped


def _project(
    name: str, folder: Path, why: str, pyproject: Mapping[str, Any] | None = None
) -> LocalProject:
    if not any((folder / f).is_file() for f in ("pyproject.toml", "setup.py")):
        raise ConfigError(f"{why} {name}: {folder} is not a project folder (no pyproject.toml)")
    version = _static(read_pyproject(folder) if pyproject is None else pyproject, "version")
    return LocalProject(canonicalize_name(name), folder, why, version)


def _static(pyproject: Mapping[str, Any], key: str) -> str | None:
    project = pyproject.get("project")
    if not isinstance(project, dict) or key in project.get("dynamic", ()):
        return None
    value = project.get(key)
    return value if isinstance(value, str) else None


def _path_dependencies(config: Config, skipped: list[str]) -> Iterator[Requirement]:
    project = config.pyproject.get("project")
    for entry in project.get("dependencies", []) if isinstance(project, dict) else []:
        try:
            requirement = Requirement(str(entry))
        except InvalidRequirement:
            continue  # the parity check names it
        if requirement.url is None or (requirement.marker and not requirement.marker.evaluate()):
            continue
        if urlparse(requirement.url).scheme != "file":
            skipped.append(f"{requirement.name}: a URL requirement ({requirement.url}); not built")
            continue
        yield requirement


def _file_url_path(url: str, root: Path) -> Path:
    """``file:///home/me/mylib`` or, as some tools write it, ``file:../mylib``."""
    return (root / url2pathname(urlparse(url).path)).resolve()


def _named_project(entry: str, root: Path) -> LocalProject:
    """``build-wheels`` entries: a folder (``../mylib``) or an installed project's name."""
    why = "[tool.shipit] build-wheels"
    if "/" in entry or entry.startswith("."):
        folder = (root / entry).resolve()
        name = _static(read_pyproject(folder), "name")
        if name is None:
            raise ConfigError(f"{why} {entry!r}: {folder} has no [project] name")
        return _project(name, folder, why)
    try:
        info = json.loads(distribution(entry).read_text("direct_url.json") or "null")
    except (PackageNotFoundError, ValueError):
        info = None
    url = info.get("url", "") if isinstance(info, dict) and "dir_info" in info else ""
    if urlparse(url).scheme != "file":
        raise ConfigError(
            f"{why} {entry!r}: not installed here from a local folder",
            tip="name a folder instead, e.g. build-wheels = ['../mylib']",
        )
    return _project(entry, _file_url_path(url, root), why)


def ships_as_code(
    config: Config, projects: Sequence[LocalProject] | None = None
) -> Callable[[str], bool]:
    """Whether a unit of this origin ships as code, rather than being installed as a wheel.

    Example::

        as_code = ships_as_code(load_config("."))  # install-project = true
        as_code("project"), as_code("editable:mylib")
        # (False, True)
    """
    if projects is None:
        projects, _ = local_projects(config)
    wheels = {p.name for p in projects}

    def as_code(origin: str) -> bool:
        if origin == "project":
            return not config.install_project
        kind, _, name = origin.partition(":")
        return not (kind == "editable" and canonicalize_name(name) in wheels)

    return as_code


def code_only(plan: Plan) -> tuple[tuple[Pack, ...], tuple[SyntaxProblem, ...]]:
    """The packs and problems of the units that ship as code, not installed as wheels."""
    projects, _ = local_projects(plan.config)
    if not plan.config.install_project and not projects:
        return plan.packs, plan.problems
    as_code = ships_as_code(plan.config, projects)
    origins = {unit.name: unit.origin for unit in plan.units}
    packs = tuple(p for p in plan.packs if as_code(p.origin))
    problems = tuple(
        p for p in plan.problems if p.unit is None or as_code(origins.get(p.unit, "project"))
    )
    return packs, problems


def build_wheel(project: LocalProject, outdir: Path) -> Path:
    """Build ``project`` into a wheel in ``outdir``: in this environment when it has the
    build backend, else in an isolated one (which may need an index)."""
    logger.info("building a wheel of %s (%s)", project.folder, project.why)
    runner = pyproject_hooks.quiet_subprocess_runner
    try:
        builder = build.ProjectBuilder(project.folder, runner=runner)
        if not builder.check_dependencies("wheel"):
            wheel = Path(builder.build("wheel", outdir))
        else:
            with build.env.DefaultIsolatedEnv() as env:
                builder = build.ProjectBuilder.from_isolated_env(env, project.folder, runner)
                env.install(builder.build_system_requires)
                env.install(builder.get_requires_for_build("wheel"))
                wheel = Path(builder.build("wheel", outdir))
    except build.BuildBackendException as e:
        output = getattr(e.exception, "output", b"") or b""
        tail = output.decode("utf-8", "replace").strip()[-_OUTPUT_CHARS:]
        raise BuildFailed(project.folder, f"{e}\n{tail}".strip()) from None
    except (build.BuildException, subprocess.CalledProcessError, OSError) as e:
        raise BuildFailed(project.folder, str(e)) from None
    name, _ = wheel_version(wheel)
    if name != project.name:
        raise BuildFailed(project.folder, f"it builds {name}, not {project.name}")
    return wheel


def wheel_version(wheel: Path) -> tuple[str, str]:
    """The canonical name and the version a wheel file's name states."""
    try:
        name, version, _, _ = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as e:
        raise BuildFailed(wheel.parent, f"{wheel.name} is not a wheel: {e}") from None
    return str(name), str(version)


def describe(environment: Mapping[str, Any]) -> str:
    """``cp3.11 on manylinux_2_36_x86_64``: what a node's wheels must fit."""
    platforms = environment.get("platforms") or ["?"]
    return f"{environment['implementation']}{environment['python']} on {platforms[0]}"


def download(
    requirements: Sequence[str],
    environment: Mapping[str, Any],
    options: PipOptions,
    outdir: Path,
    *,
    find_links: Sequence[Path] = (),
    timeout: float = 600.0,
) -> list[Path]:
    """Fetch wheels of ``requirements`` and their dependencies for a node's Python and
    platform (``environment`` is what ``installer.environment`` returned there)."""
    target = ["--python-version", str(environment["python"])]
    target += ["--implementation", str(environment["implementation"])]
    target += [a for abi in environment["abis"] for a in ("--abi", abi)]
    target += [a for tag in environment["platforms"] for a in ("--platform", tag)]
    links = [a for folder in find_links for a in ("--find-links", str(folder))]
    command = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
        "--only-binary=:all:", *target, "--dest", str(outdir), *options.args(), *links,
        *requirements,
    ]  # fmt: skip
    logger.info("fetching wheels for %s: %s", describe(environment), " ".join(requirements))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DownloadFailed(requirements, describe(environment), "pip timed out") from None
    if done.returncode:
        raise DownloadFailed(requirements, describe(environment), pip_error(done.stderr))
    return sorted(outdir.glob("*.whl"))
