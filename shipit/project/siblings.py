"""Other projects installed with ``pip install -e``, as records: a name, a folder, and the
top-level names it installs. Found through each install's ``direct_url.json`` (PEP 610).

Nothing here reads an install's pyproject.toml: ``Project`` reads one only once the project's
code imports a name that install provides (see ``shipit.project.discover``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import Distribution
from importlib.metadata import distributions as installed_distributions
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from packaging.utils import canonicalize_name

from .imports import top_level_names

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EditableInstall:
    """A distribution installed in editable mode from a folder of this machine."""

    distribution: str
    folder: Path
    # Top-level names the distribution installs; empty when its metadata does not say (a .pth
    # editable install puts the whole folder on sys.path, so every unit in it is importable).
    names: frozenset[str]


def editable_installs(
    root: Path, distributions: Iterable[Distribution] | None = None
) -> Iterator[EditableInstall]:
    """The editable installs of the environment (``distributions`` defaults to the running
    one's), in ``sys.path`` order, but for the project at ``root`` itself."""
    seen: set[str] = set()
    for dist in installed_distributions() if distributions is None else distributions:
        name = dist.metadata["Name"]
        # Of several copies on sys.path, the first is the one Python imports.
        if name is None or canonicalize_name(name) in seen:
            continue
        seen.add(canonicalize_name(name))
        folder = editable_folder(dist)
        if folder is None or folder == root or not folder.is_dir():
            continue
        yield EditableInstall(name, folder, top_level_names(dist))


def editable_folder(dist: Distribution) -> Path | None:
    """The project folder of an editable install, from its ``direct_url.json`` (PEP 610)."""
    try:
        info = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        return None
    if not isinstance(info, dict) or not isinstance(info.get("dir_info"), dict):
        return None
    url = urlparse(str(info.get("url", "")))
    if info["dir_info"].get("editable") is not True or url.scheme != "file":
        return None
    return Path(url2pathname(url.path)).resolve()
