"""Properties of discovery, packing and the node-side unpack, over random project trees.

Hypothesis draws trees of packages, modules and data files with ASCII and non-ASCII names,
mixed with names that must never ship (junk, secrets, what .gitignore lists). Checked: the
walk ships exactly the expected files and the watcher's per-file answer agrees with it;
packs are the same bytes whatever the creation order and mtimes; a node unpacks (and
patches) exactly the chosen files. No cluster: the node side is shipit.remote's NodeStore,
called here directly (it is plain Python).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipit.config import load_config
from shipit.node.hoststore import HostStore
from shipit.node.protocol import unzip
from shipit.node.store import NodeStore
from shipit.project.discover import Project
from shipit.project.pack import Pack, Packer

# Importable names, some outside ASCII (NFC, as a filesystem hands them back).
GOOD = ["alpha", "beta_2", "Gamma", "données", "λx", "模块", "ñu", "_private", "z9"]
DATA = ["data.json", "notes.txt", "日本.csv", "naïve data.bin", "model.pkl", "py.typed"]
# Names that never ship at any depth: junk, secrets, and what the tree's .gitignore lists.
NEVER_DIRS = [".git", ".venv", "__pycache__", "node_modules", "x.egg-info", ".ssh", "scratch_d"]
NEVER_FILES = [
    ".env", ".env.local", "server.pem", "id_rsa", "a.pyc", "test_a.py", "b_test.py",
    "conftest.py", "a.swp", "scratch_f.py", "credentials.json",
]  # fmt: skip
GITIGNORE = "scratch_*\n"

content = st.binary(max_size=64).map(lambda b: b"# " + b.hex().encode() + b"\n")
name = st.sampled_from(GOOD)


@st.composite
def package(draw: st.DrawFn, depth: int = 0) -> dict[str, bytes]:
    """A package's files, relative to its folder: __init__.py, modules, data, subfolders."""
    files = {"__init__.py": draw(content)}
    for module in draw(st.lists(name, max_size=3, unique=True)):
        files[f"{module}.py"] = draw(content)
    for data in draw(st.lists(st.sampled_from(DATA), max_size=2, unique=True)):
        files[data] = draw(content)
    for never in draw(st.lists(st.sampled_from(NEVER_FILES), max_size=2, unique=True)):
        files[never] = draw(content)
    for folder in draw(st.lists(st.sampled_from(NEVER_DIRS), max_size=1)):
        files[f"{folder}/hidden.py"] = draw(content)
    if depth < 2:
        for sub in draw(st.lists(name, max_size=2, unique=True)):
            if f"{sub}.py" not in files:
                for rel, data in draw(package(depth + 1)).items():
                    files[f"{sub}/{rel}"] = data
    return files


@st.composite
def trees(draw: st.DrawFn) -> dict[str, bytes]:
    """A project folder: top-level packages and modules, junk beside them, a .gitignore."""
    files: dict[str, bytes] = {".gitignore": GITIGNORE.encode()}
    packages = draw(st.lists(name, min_size=0, max_size=3, unique=True))
    for pkg in packages:
        for rel, data in draw(package()).items():
            files[f"{pkg}/{rel}"] = data
    for module in draw(st.lists(name, max_size=3, unique=True)):
        if module not in packages:
            files[f"{module}.py"] = draw(content)
    for never in draw(st.lists(st.sampled_from(NEVER_FILES), max_size=3, unique=True)):
        files[never] = draw(content)
    return files


def _expected(tree: dict[str, bytes]) -> set[str]:
    """What must ship: every file none of whose path parts is a never-ship name."""
    never = set(NEVER_DIRS) | set(NEVER_FILES) | {".gitignore"}
    return {rel for rel in tree if not never & set(rel.split("/"))}


def _write(root: Path, tree: dict[str, bytes], order: list[str], mtime: float) -> None:
    for i, rel in enumerate(order):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tree[rel])
        os.utime(path, (mtime + i * 7.5, mtime + i * 7.5))


def _packs(root: Path) -> list[Pack]:
    units = Project(load_config(root), find_editable=False).units()
    packs, problems = Packer().pack(units)
    assert problems == []
    return packs


@contextlib.contextmanager
def _folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp).resolve()


def _unpacked(store: NodeStore, name: str) -> dict[str, bytes]:
    """Every file of a unit's live folder on the node, bytecode aside."""
    top = Path(store.units[name]["path"])
    return {
        p.relative_to(top).as_posix(): p.read_bytes()
        for p in top.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def _apply(store: NodeStore, generation: int, packs: list[Pack]) -> None:
    """Ship ``packs`` to the node as a push would: each unit's zip, checked and applied."""
    blobs: dict[str, bytes] = {}
    changed = []
    for pack in packs:
        blobs.update(unzip(pack.zip(), dict(pack.manifest)))
        changed.append({"name": pack.name, "digest": pack.digest, "manifest": dict(pack.manifest)})
    removed = [n for n in store.units if n not in {p.name for p in packs}]
    saved = list(sys.path)
    try:
        asyncio.run(store.apply("epoch", generation, changed, removed, blobs))  # type: ignore[arg-type]
    finally:
        sys.path[:] = saved  # the store put its folders on sys.path: not ours to keep


slow = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@slow
@given(tree=trees(), shuffle=st.randoms(use_true_random=False))
def test_discovery_ships_what_it_should_and_packing_is_deterministic(
    tree: dict[str, bytes], shuffle: random.Random
) -> None:
    order = sorted(tree)
    reverse = list(order)
    shuffle.shuffle(reverse)
    with _folder() as first, _folder() as second:
        _write(first, tree, order, mtime=1_000_000_000)
        _write(second, tree, reverse, mtime=1_700_000_000)
        a, b = _packs(first), _packs(second)

        chosen = {f for p in a for f in p.files}
        assert chosen == _expected(tree)
        # Same files, same bytes: whatever the creation order, the clock, the folder.
        assert [(p.name, p.digest, dict(p.manifest)) for p in a] == [
            (p.name, p.digest, dict(p.manifest)) for p in b
        ]
        assert [p.zip() for p in a] == [p.zip() for p in b]
        assert [p.zip() for p in a] == [p.zip() for p in _packs(first)]


@slow
@given(tree=trees())
def test_the_watchers_per_file_answer_agrees_with_the_walk(tree: dict[str, bytes]) -> None:
    with _folder() as root:
        _write(root, tree, sorted(tree), mtime=1_500_000_000)
        project = Project(load_config(root), find_editable=False)
        walked = {f: u.name for u in project.units() for f in u.files}
        asked = {rel: project.unit_name_for(root / rel) for rel in tree}
        assert {rel: name for rel, name in asked.items() if name is not None} == walked


@slow
@given(before=trees(), after=trees())
def test_unpacking_on_a_node_reproduces_exactly_the_chosen_files(
    before: dict[str, bytes], after: dict[str, bytes]
) -> None:
    with _folder() as project, _folder() as node:
        store = NodeStore(HostStore.private(str(node)))
        # A first version, then the project replaced by another tree: the second push is
        # staged as a patch of the first (changed files moved in, vanished ones deleted).
        for generation, tree in enumerate((before, after), start=1):
            for path in sorted(project.iterdir()):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            _write(project, tree, sorted(tree), mtime=1_500_000_000)
            packs = _packs(project)
            _apply(store, generation, packs)

            assert set(store.units) == {p.name for p in packs}
            for pack in packs:
                assert store.units[pack.name]["digest"] == pack.digest
                assert _unpacked(store, pack.name) == {rel: tree[rel] for rel in pack.files}
