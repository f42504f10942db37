"""The import graph a node reads to forget only what a save made stale (``shipit.node.graph``):
every kind of edge the language has, read as text, and the modules a change reaches."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipit.node.graph import Imports, Reader, imports_of, module_name, package_of, stale
from shipit.project.pack import file_digest

MODULES = {"p", "p.a", "p.b", "p.sub", "p.sub.c", "p.sub.d", "q"}


def names(source: str, module: str = "p.a", package: bool = False) -> list[str]:
    found = imports_of(source.encode(), module, MODULES, package)
    assert not found.opaque, source
    return sorted(found.names)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import q", ["q"]),
        ("import p.sub.c", ["p", "p.sub", "p.sub.c"]),  # binds p: holds the package
        ("import p.sub.c as c", ["p.sub.c"]),
        ("import q, p.b", ["p", "p.b", "q"]),
        ("from p.sub import c", ["p.sub.c"]),  # a submodule alone: not the package
        ("from p.sub import c, helper", ["p.sub", "p.sub.c"]),
        ("from p.sub import (\n    c,\n    d,\n)", ["p.sub.c", "p.sub.d"]),
        ("from p.sub import *", ["p.sub", "p.sub.c", "p.sub.d"]),
        ("from . import b", ["p.b"]),
        ("from .b import f", ["p.b"]),
        ("from .sub.c import f", ["p.sub.c"]),
        (
            "import importlib\nm = importlib.import_module('p.sub.d')",
            ["importlib", "p", "p.sub", "p.sub.d"],
        ),
        ("try:\n    import q\nexcept ImportError:\n    q = None", ["q"]),
        ("if True:\n    from p import b", ["p.b"]),
        ("class K:\n    import q", ["q"]),
        ("def f():\n    import q\n    from p import b", []),  # runs per call: finds the new one
        ("async def f():\n    import q", []),
        ("def f():\n    if x:\n        import q", []),
        ("import q  # a comment\n", ["q"]),
    ],
)
def test_each_kind_of_import_is_an_edge(source: str, expected: list[str]) -> None:
    assert names(source) == expected


def test_relative_imports_of_a_package_start_from_the_package_itself() -> None:
    assert names("from . import c\nfrom .. import b", module="p.sub", package=True) == [
        "p.b",
        "p.sub.c",
    ]
    assert names("from .. import b", module="p.sub.c") == ["p.b"]


@pytest.mark.parametrize(
    "source",
    [
        "import importlib\nm = importlib.import_module(name)",
        "mod = __import__(name)",
        "m = importlib.import_module('.c', __name__)",
        "__path__.append('/elsewhere')",
        "__path__ = __import__('pkgutil').extend_path(__path__, __name__)",
        "import sys\nsys.modules['p.alias'] = sys.modules[__name__]",
    ],
)
def test_imports_that_text_cannot_tell_make_the_module_opaque(source: str) -> None:
    assert imports_of(source.encode(), "p.a", MODULES).opaque


def test_a_computed_import_inside_a_function_is_not_opaque() -> None:
    found = imports_of(b"def load(name):\n    return __import__(name)\n", "p.a", MODULES)
    assert found == Imports(frozenset(), False)


def test_module_and_package_names_of_files() -> None:
    assert module_name("p/sub/__init__.py") == "p.sub"
    assert module_name("p/sub/c.py") == "p.sub.c"
    assert module_name("p/data.json") is None
    assert module_name("p/not-a-module.py") is None
    manifest = {"p/__init__.py", "p/sub/__init__.py", "p/sub/tables/x.csv"}
    assert package_of("p/sub/tables/x.csv", manifest) == "p.sub"
    assert package_of("p-1.0.dist-info/METADATA", manifest) is None


def test_a_change_reaches_its_importers_transitively_and_nothing_else() -> None:
    loaded = {
        "p": Imports(frozenset({"p.a"}), False),
        "p.a": Imports(frozenset({"p.b"}), False),
        "p.b": Imports(frozenset(), False),
        "p.sub": Imports(frozenset(), False),
        "p.sub.c": Imports(frozenset({"q"}), False),
        "q": Imports(frozenset(), False),
    }
    units = {m: m.partition(".")[0] for m in loaded}
    assert stale(loaded, ["p.b"], units) == {"p.b", "p.a", "p"}
    assert stale(loaded, ["q"], units) == {"q", "p.sub.c"}  # across units
    assert stale(loaded, ["p.sub.d"], units) == set()  # not loaded: nothing to forget
    # A module whose imports are unknown goes with any change in its unit.
    loaded["p.sub"] = Imports(frozenset(), True)
    assert stale(loaded, ["p.b"], units) == {"p.b", "p.a", "p", "p.sub"}


def _unit(root: Path, files: dict[str, str]) -> dict[str, str]:
    manifest = {}
    for rel, text in files.items():
        path = root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        manifest[rel] = file_digest(text.encode())
    return manifest


def test_the_planner_reads_the_loaded_version_and_names_what_a_new_one_makes_stale(
    tmp_path: Path,
) -> None:
    files = {
        "p/__init__.py": "from .a import f\n",
        "p/a.py": "from . import b\n",
        "p/b.py": "X = 1\n",
        "p/c.py": "import json\n",
        "p/tables/t.csv": "1,2\n",
        "p/tables/__init__.py": "",
        "p/tables/reader.py": "",
    }
    old = _unit(tmp_path / "v1", files)
    loaded = {m: str(tmp_path / "v1") for m in ("p", "p.a", "p.b", "p.c", "p.tables")}
    reader = Reader()
    held = {"p": (str(tmp_path / "v1"), old)}

    def plan(changes: dict[str, str]) -> set[str]:
        new = {**old, **{rel: file_digest(text.encode()) for rel, text in changes.items()}}
        return reader.planner(held, {"p": new})(loaded)

    assert plan({"p/b.py": "X = 2\n"}) == {"p", "p.a", "p.b"}
    assert plan({"p/c.py": "import os\n"}) == {"p.c"}
    # A data file: its package and the modules beside it, which may read it as they load.
    assert plan({"p/tables/t.csv": "3,4\n"}) == {"p.tables"}
    # A removed unit: every loaded module of it.
    assert reader.planner(held, {"p": {}})(loaded) == set(loaded)
