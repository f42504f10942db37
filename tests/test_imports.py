"""imports.py: what code imports, read as text; which installed distributions provide it."""

from __future__ import annotations

import logging
import textwrap
from importlib.metadata import PathDistribution
from pathlib import Path

import pytest

from shipit.project.imports import (
    distributions_for,
    guarded_names,
    imported_names,
    optional_names,
    top_level_names,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import a.b.c", {"a"}),
        ("import a as x, b.c as y", {"a", "b"}),
        ("from c.d import e", {"c"}),
        ("from c import d, e", {"c"}),
        ("from . import sibling", set()),
        ("from .mod import name", set()),
        ("from ..pkg.mod import name", set()),
        ("def f():\n    import lazy.thing\n", {"lazy"}),
        ("try:\n    import fast\nexcept ImportError:\n    import slow\n", {"fast", "slow"}),
        ("x = 'import not_code'\n# import not_a_comment\n", set()),
        ("from  pkg.sub   import  (a,\n    b)\nimport x, y.z as w  # note\n", {"pkg", "x", "y"}),
        ("if True: import inline\n", set()),  # a statement after a colon is not seen
    ],
)
def test_imported_names_are_top_level_names_of_absolute_imports(
    tmp_path: Path, source: str, expected: set[str]
) -> None:
    assert imported_names([write(tmp_path / "m.py", source)]) == expected


def test_imported_names_unions_files_and_skips_those_it_cannot_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = write(tmp_path / "good.py", "import numpy\n")
    broken = write(tmp_path / "broken.py", "import pandas\ndef f(:\n")  # read as text all the same
    other = write(tmp_path / "other.py", "from scipy import stats\n")
    with caplog.at_level(logging.DEBUG, logger="shipit.project.imports"):
        names = imported_names([good, broken, other, tmp_path / "missing.py"])
    assert names == {"numpy", "pandas", "scipy"}
    assert "missing.py" in caplog.text


def test_imported_names_never_runs_the_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = write(tmp_path / "side_effect.py", f"import os\nopen({str(marker)!r}, 'w').close()\n")
    assert imported_names([script]) == {"os"}
    assert not marker.exists()


def test_distributions_for_leaves_out_stdlib_and_unknown_names() -> None:
    found = distributions_for({"os", "sys", "json", "pytest", "_pytest", "no_such_module_xyz"})
    assert found == {"_pytest": ["pytest"], "pytest": ["pytest"]}


def dist_info(site: Path, name: str, *, top_level: str | None = None, record: str = "") -> Path:
    folder = site / f"{name}-1.0.dist-info"
    write(folder / "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if top_level is not None:
        write(folder / "top_level.txt", top_level)
    if record:
        write(folder / "RECORD", record)
        for line in record.splitlines():  # installed files exist (Python 3.13 skips others)
            file = (site / line.partition(",")[0]).resolve()
            if file.is_relative_to(site.resolve()) and not file.exists():
                write(file, "")
    return folder


def test_top_level_names_from_top_level_txt_or_from_installed_files(tmp_path: Path) -> None:
    declared = PathDistribution(dist_info(tmp_path, "declared", top_level="alpha\nbeta\n"))
    inferred = PathDistribution(
        dist_info(
            tmp_path,
            "inferred",
            record="gamma/__init__.py,,\ngamma/x.py,,\ndelta.py,,\n"
            "inferred-1.0.dist-info/METADATA,,\n../../bin/tool,,\n"
            "__editable___inferred_1_0_finder.py,,\n__editable__.inferred-1.0.pth,,\n",
        )
    )
    assert top_level_names(declared) == {"alpha", "beta"}
    assert top_level_names(inferred) == {"gamma", "delta"}


def test_distributions_for_given_distributions(tmp_path: Path) -> None:
    dists = [
        PathDistribution(dist_info(tmp_path / "a", "first", top_level="shared\nonly_first\n")),
        PathDistribution(dist_info(tmp_path / "b", "second", top_level="shared\n")),
        PathDistribution(dist_info(tmp_path / "c", "typing-backport", top_level="typing\n")),
        # the same distribution again, further down sys.path
        PathDistribution(dist_info(tmp_path / "d", "first", top_level="shared\nonly_first\n")),
    ]
    found = distributions_for(["shared", "only_first", "typing", "absent"], dists)
    assert found == {"only_first": ["first"], "shared": ["first", "second"]}


GUARDED_CASES = [
    ("try:\n    import fast\nexcept ImportError:\n    import slow\n", {"fast"}),  # slow: fallback
    ("try:\n    import a.b\nexcept ModuleNotFoundError:\n    a = None\n", {"a"}),
    ("try:\n    from a import x\nexcept (ValueError, ImportError):\n    x = None\n", {"a"}),
    ("try:\n    import a\nexcept Exception:\n    pass\n", {"a"}),
    ("try:\n    import a\nexcept:\n    pass\n", {"a"}),
    ("try:\n    import a\nexcept builtins.ImportError:\n    pass\n", {"a"}),
    ("try:\n    import a\nexcept ValueError:\n    pass\n", set()),  # a failed import escapes
    ("import a\ntry:\n    import a, b\nexcept ImportError:\n    pass\n", {"b"}),  # a is plain too
    ("def f():\n try:\n  import lazy\n except ImportError:\n  return\n", {"lazy"}),
    ("try:\n    from . import sibling\nexcept ImportError:\n    pass\n", set()),
    ("try:\n    import a\nexcept ImportError:\n    pass\nelse:\n    import b\n", {"a"}),
    ("try:\n    import a\nexcept ImportError:\n    pass\nfinally:\n    import c\n", {"a"}),
    ("try:\n    import a\nexcept* ImportError:\n    pass\n", {"a"}),
    ("try:\n    if x:\n        import a\nexcept ImportError:\n    pass\n", {"a"}),
    ("try:\n    def f():\n        import a\nexcept ImportError:\n    pass\n", set()),
    (
        "try:\n    import a\n\n    # note\nexcept (ValueError,\n        ImportError):\n    pass\n",
        set(),
    ),
]


@pytest.mark.parametrize(("source", "expected"), GUARDED_CASES)
def test_guarded_imports_are_optional(tmp_path: Path, source: str, expected: set[str]) -> None:
    path = write(tmp_path / "m.py", source)
    assert guarded_names(path.read_bytes()) == expected
    assert optional_names([path]) == expected


def test_a_name_imported_plainly_in_another_file_is_not_optional(tmp_path: Path) -> None:
    guarded = write(tmp_path / "a.py", "try:\n    import numpy\nexcept ImportError:\n    pass\n")
    plain = write(tmp_path / "b.py", "import numpy\n")
    assert optional_names([guarded]) == {"numpy"}
    assert optional_names([guarded, plain]) == set()
