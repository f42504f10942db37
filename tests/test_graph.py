"""The import graph a node reads to forget only what a save made stale (``shipit.node.graph``):
every kind of edge the language has, read as text, and the modules a change reaches."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipit.node.graph import imports_of, module_name, package_of
from shipit.node.reach import Reader, stale
from shipit.project.pack import file_digest


def reach(files: dict[str, str], *changed: str) -> set[str]:
    """The modules a change to ``changed`` forgets, all of ``files`` loaded. A key ending in
    ``/`` is a package's ``__init__``."""
    loaded = {
        name.rstrip("/"): imports_of(text.encode(), name.rstrip("/"), name.endswith("/"))
        for name, text in files.items()
    }
    return stale(loaded, changed, set(loaded))


def edge(source: str, target: str = "p.b", **others: str) -> bool:
    """Whether ``p.a`` (its text ``source``) goes when ``target``'s file changes."""
    files = {"p/": "", "p.a": source, "p.b": "X = 1\n", "p.sub/": "", "p.sub.c": "", "q": ""}
    files.update(others)
    return "p.a" in reach(files, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("import q", "q"),
        ("import p.b", "p.b"),
        ("import p.b as b", "p.b"),
        ("from p.b import X", "p.b"),
        ("from p import b", "p.b"),
        ("from . import b", "p.b"),
        ("from .b import X", "p.b"),
        ("from .sub.c import f", "p.sub.c"),
        ("from .sub import c", "p.sub.c"),
        ("from p.sub import (\n    c,\n)", "p.sub.c"),
        ("from p import *", "p.b"),
        ("import importlib\nm = importlib.import_module('p.b')", "p.b"),
        ("try:\n    from p.b import X\nexcept ImportError:\n    X = None", "p.b"),
        ("if True:\n    from p import b", "p.b"),
        ("class K:\n    from p import b", "p.b"),
        ("import p\n\ndef f():\n    return p.b.X", "p.b"),  # reached through a name
        ("import p.sub.c\n\ndef f():\n    return p.sub.c.f()", "p.sub.c"),
    ],
)
def test_each_kind_of_import_is_an_edge(source: str, target: str) -> None:
    assert edge(source, target)


@pytest.mark.parametrize(
    "source",
    [
        "def f():\n    import p.b\n    from p import b",  # runs at each call: finds the new one
        "async def f():\n    from p.b import X",
        "def f():\n    if x:\n        from p.b import X",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.b import X",
        "import typing\nif typing.TYPE_CHECKING:\n    import p.b",
        "from p.sub import c",  # a submodule of the package: not the rest of it
        "import q  # p.b is only named in a comment",
    ],
)
def test_imports_that_do_not_hold_the_changed_module_are_not_edges(source: str) -> None:
    assert not edge(source)


def test_a_string_spanning_lines_does_not_end_the_function_around_an_import() -> None:
    """sympy's ``Pow.__new__``: a warning's text dedented inside the method, then an import."""
    method = (
        "class Pow:\n"
        "    def __new__(cls, b):\n"
        "        if b:\n"
        "            warn('''text\n"
        "    dedented.''',\n"
        "            )\n"
        "        else:\n"
        "            from p.b import X\n"
    )
    assert not edge(method)
    assert not edge("def f(a,\n      b):\n    from p.b import X\n")
    assert edge("x = [\n1]\nif x:\n    from p.b import X\n")


def test_a_name_a_package_passes_on_is_held_from_where_it_comes() -> None:
    files = {
        "p/": "from .b import X\nfrom .c import Y\n",
        "p.b": "X = 1\n",
        "p.c": "Y = 2\n",
        "p.user": "from p import X\n",
        "p.deep": "import p\n\ndef f():\n    return p.X\n",
    }
    # p runs again (it imports c), but X still comes from the unchanged b: p.user stays.
    assert reach(files, "p.c") == {"p.c", "p"}
    assert reach(files, "p.b") == {"p.b", "p", "p.user", "p.deep"}
    # A change to the package's own file reaches what takes from it, whatever it takes.
    assert reach(files, "p") == {"p", "p.user", "p.deep"}
    # Defined there as well as imported: held from the package itself.
    files["p/"] = "from .b import X\nfrom .c import Y\nX = X * 2\n"
    assert "p.user" in reach(files, "p.c")


def test_relative_imports_of_a_package_start_from_the_package_itself() -> None:
    found = imports_of(b"from . import c\nfrom .. import b", "p.sub", package=True)
    assert sorted(found.takes) == [("p", "b"), ("p.sub", "c")]
    assert sorted(imports_of(b"from .. import b", "p.sub.c").takes) == [("p", "b")]


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
def test_imports_that_text_cannot_tell_make_the_module_go_with_its_unit(source: str) -> None:
    assert imports_of(source.encode(), "p.a").opaque
    assert edge(source, "p.sub.c")
    assert not edge(source, "q")


@pytest.mark.parametrize(
    "source",
    [
        "def load(name):\n    return __import__(name)\n",
        "def import_module(name):\n    pass\n",  # sympy defines one
        '"""Import them with the import_module() function."""\n',
    ],
)
def test_a_function_named_like_an_import_is_not_opaque(source: str) -> None:
    assert not imports_of(source.encode(), "p.a").opaque


def test_a_change_reaches_its_importers_transitively_and_across_units() -> None:
    files = {"p/": "from .a import f\n", "p.a": "from .b import g\n", "p.b": "", "q": ""}
    files["r"] = "from p import f\n"
    assert reach(files, "p.b") == {"p.b", "p.a", "p", "r"}
    assert reach(files, "q") == {"q"}
    assert reach(files, "p.missing") == set()  # not loaded: nothing to forget


def test_module_and_package_names_of_files() -> None:
    assert module_name("p/sub/__init__.py") == "p.sub"
    assert module_name("p/sub/c.py") == "p.sub.c"
    assert module_name("p/data.json") is None
    assert module_name("p/not-a-module.py") is None
    manifest = {"p/__init__.py", "p/sub/__init__.py", "p/sub/tables/x.csv"}
    assert package_of("p/sub/tables/x.csv", manifest) == "p.sub"
    assert package_of("p-1.0.dist-info/METADATA", manifest) is None


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
        **{f"p/d{i}.py": "" for i in range(4)},
    }
    old = _unit(tmp_path / "v1", files)
    names = ("p", "p.a", "p.b", "p.c", "p.tables", "p.d0", "p.d1", "p.d2", "p.d3")
    loaded = dict.fromkeys(names, str(tmp_path / "v1"))
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
    # A save that reaches most of a unit's loaded modules reloads all of them.
    for name in ("p.d0", "p.d1", "p.d2", "p.d3"):
        del loaded[name]
    assert plan({"p/b.py": "X = 3\n"}) == set(loaded)


def test_lines_continued_by_a_backslash_belong_to_the_import() -> None:
    """sympy's ``ntheory/__init__.py`` lists its names so."""
    text = b"from .b import X, \\\n    Y, \\\r\n    Z\nimport q, \\\n    r\n"
    found = imports_of(text, "p", True)
    assert sorted(found.takes) == [("p.b", "X"), ("p.b", "Y"), ("p.b", "Z")]
    assert sorted(found.runs) == ["q", "r"]
