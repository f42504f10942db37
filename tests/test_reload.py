"""A save reloads only what it made stale, on real workers: the changed modules and the ones
that import them; every other module stays loaded, the same object, and no unchanged file is
compiled again."""

from __future__ import annotations

import json
import sys
from typing import Any

import cloudpickle
import pytest

import shipit

from .helpers import Cluster, Project, cli

cloudpickle.register_pickle_by_value(sys.modules[__name__])

FILES = {
    "{pkg}/__init__.py": 'NAME = "one"\n',
    "{pkg}/util.py": "def helper():\n    return 1\n",
    "{pkg}/api.py": "from .util import helper\n\ndef total():\n    return helper()\n",
    "{pkg}/named.py": "from . import NAME\n\ndef name():\n    return NAME\n",
    "{pkg}/lazy.py": "def value():\n    from .util import helper\n    return helper()\n",
    "{pkg}/cross.py": "from helpers import helper\n\ndef value():\n    return helper()\n",
    "{pkg}/other.py": "import os\n\nTOKEN = os.urandom(8).hex()\n",
    "{pkg}/dyn.py": (
        "import importlib\nimport os\n\n"
        'TARGET = "json"\nMOD = importlib.import_module(TARGET)\nTOKEN = os.urandom(8).hex()\n'
    ),
}
LOADED = ["api", "named", "lazy", "cross", "other", "dyn"]


def _state(pkg: str, modules: list[str]) -> dict[str, Any]:
    """What a task sees: each module's value, and the identity of its module object."""
    import importlib as _importlib
    import sys as _sys

    out: dict[str, Any] = {}
    for name in modules:
        module = _importlib.import_module(f"{pkg}.{name}")
        for attribute in ("total", "name", "value"):
            if hasattr(module, attribute):
                out[name] = getattr(module, attribute)()
        if hasattr(module, "TOKEN"):
            out[f"{name}.TOKEN"] = module.TOKEN
    out["ids"] = {m: id(_sys.modules[f"{pkg}.{m}"]) for m in modules}
    return out


def _per_worker(cluster: Cluster, project: Project, modules: list[str] = LOADED) -> list[Any]:
    return cluster.on_every_worker(_state, project.name, modules, per_worker=1)


def _ship(cluster: Cluster, project: Project) -> None:
    report = shipit.sync(cluster.client, project.root, install=False)
    assert report.ok, report


def test_a_save_reloads_the_changed_module_and_its_importers_only(
    local_cluster: Cluster, project: Project
) -> None:
    for rel, text in FILES.items():
        project.write(rel, text)
    _ship(local_cluster, project)
    before = _per_worker(local_cluster, project)
    assert [s["api"] for s in before] == [1, 1]

    project.write("{pkg}/util.py", "def helper():\n    return 2\n")
    _ship(local_cluster, project)
    after = _per_worker(local_cluster, project)
    for old, new in zip(before, after, strict=True):
        assert (new["api"], new["lazy"]) == (2, 2)  # `from .util import` and a call-time import
        # Untouched modules were not run again: the same objects, the same state.
        assert new["other.TOKEN"] == old["other.TOKEN"]
        assert {m: new["ids"][m] for m in ("named", "cross", "other")} == {
            m: old["ids"][m] for m in ("named", "cross", "other")
        }
        assert new["ids"]["api"] != old["ids"]["api"]
        # A module importing by a computed name goes with any change in its package.
        assert new["dyn.TOKEN"] != old["dyn.TOKEN"]

    project.write("{pkg}/__init__.py", 'NAME = "two"\n')
    _ship(local_cluster, project)
    edited = _per_worker(local_cluster, project)
    for old, new in zip(after, edited, strict=True):
        assert new["named"] == "two"  # `from . import NAME`: an edge to the package
        assert new["other.TOKEN"] == old["other.TOKEN"]

    project.write("helpers.py", "def helper():\n    return 'helped again'\n")  # another unit
    _ship(local_cluster, project)
    assert [s["cross"] for s in _per_worker(local_cluster, project)] == ["helped again"] * 2

    project.remove("{pkg}/util.py")
    _ship(local_cluster, project)
    with pytest.raises(ModuleNotFoundError, match="util"):
        local_cluster.on_every_worker(_state, project.name, ["api"], per_worker=1)
    final = _per_worker(local_cluster, project, ["named", "other"])
    assert [s["other.TOKEN"] for s in final] == [s["other.TOKEN"] for s in edited]


def _bytecode(pkg: str, files: list[str]) -> dict[str, Any]:
    """Per file of the live version: the inode of its cached bytecode, None without one."""
    import os as _os
    import sys as _sys

    folder = _os.path.dirname(_os.path.dirname(_sys.modules[pkg].__file__))
    found: dict[str, Any] = {}
    for file in files:
        cache = _os.path.join(folder, pkg, "__pycache__")
        names = [n for n in _os.listdir(cache) if n.startswith(f"{file}.") and n.endswith(".pyc")]
        found[file] = _os.stat(_os.path.join(cache, names[0])).st_ino if names else None
    found["folder"] = folder
    return found


def test_no_unchanged_file_is_compiled_again_where_bytecode_is_not_written(
    local_cluster: Cluster, project: Project
) -> None:
    """These machines set PYTHONDONTWRITEBYTECODE=1: the workers still keep their bytecode of
    shipped files, and a new version lends it for every file that did not change."""
    client = local_cluster.client
    assert all(client.run(lambda: sys.dont_write_bytecode).values())
    for rel, text in FILES.items():
        project.write(rel, text)
    _ship(local_cluster, project)
    _per_worker(local_cluster, project)
    files = ["util", "api", "other", "named"]
    first = local_cluster.on_every_worker(_bytecode, project.name, files, per_worker=1)
    assert all(first[0][f] is not None for f in files), first

    project.write("{pkg}/util.py", "def helper():\n    return 3\n")
    _ship(local_cluster, project)
    _per_worker(local_cluster, project)
    second = local_cluster.on_every_worker(_bytecode, project.name, files, per_worker=1)
    assert second[0]["folder"] != first[0]["folder"]
    for file in ("other", "named"):  # unchanged: the same bytecode file, never compiled again
        assert second[0][file] == first[0][file]
    assert second[0]["util"] not in (None, first[0]["util"])  # changed: compiled once


def test_dry_run_names_once_the_modules_whose_imports_text_cannot_tell(project: Project) -> None:
    for rel, text in FILES.items():
        project.write(rel, text)
    result = cli("sync", "--dry-run", "--no-install", cwd=project.root)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("reloads")]
    assert lines == [
        f"reloads    {project.name}.dyn: imports by computed names, so a save anywhere in "
        f"{project.name} reloads it and its importers"
    ]
    data = json.loads(cli("sync", "--dry-run", "--no-install", "--json", cwd=project.root).stdout)
    assert data["computed_imports"] == [f"{project.name}.dyn"]


def test_nodes_configured_to_reload_whole_units_do(
    local_cluster: Cluster, project: Project
) -> None:
    """``shipit.reload: unit`` in a node's Dask config: the escape hatch for code whose
    imports a text scan misreads."""
    for rel, text in FILES.items():
        project.write(rel, text)
    _ship(local_cluster, project)

    def whole_units() -> None:
        import dask.config as _config

        _config.set({"shipit.reload": "unit"})

    local_cluster.client.run(whole_units)
    before = _per_worker(local_cluster, project)
    project.write("{pkg}/util.py", "def helper():\n    return 5\n")
    _ship(local_cluster, project)
    after = _per_worker(local_cluster, project)
    for old, new in zip(before, after, strict=True):
        assert new["api"] == 5
        assert new["other.TOKEN"] != old["other.TOKEN"]  # ran again with the whole unit
