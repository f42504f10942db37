"""Packing without a cluster: manifests, deterministic zips, syntax checks, the file cache."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import shipit.project.pack
from shipit.project.discover import Unit
from shipit.project.pack import Packer, StaleFile, file_digest, unit_digest
from shipit.project.syntaxcache import SyntaxCache


def _unit(root: Path, files: dict[str, str], name: str = "pkg") -> Unit:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Unit(name=name, root=root, files=tuple(sorted(files)))


FILES = {"pkg/__init__.py": "", "pkg/sub.py": "VALUE = 1\n", "pkg/data/table.json": "{}\n"}


def test_same_content_gives_the_same_zip_and_digest(tmp_path: Path) -> None:
    a = _unit(tmp_path / "a", FILES)
    b = _unit(tmp_path / "b", FILES)
    os.utime(b.root / "pkg/sub.py", (0, 0))  # other times, other modes, same content
    os.chmod(b.root / "pkg/sub.py", 0o600)
    (pa,), _ = Packer().pack([a])
    (pb,), _ = Packer().pack([b])
    assert pa.digest == pb.digest
    assert pa.zip() == pb.zip()
    with zipfile.ZipFile(io.BytesIO(pa.zip())) as zf:
        assert zf.namelist() == sorted(FILES)
        assert zf.read("pkg/sub.py") == b"VALUE = 1\n"


@pytest.mark.parametrize(
    "change",
    [
        {"pkg/sub.py": "VALUE = 2\n"},  # content
        {"pkg/other.py": "X = 1\n"},  # a new file
    ],
)
def test_any_change_of_content_changes_the_digest(tmp_path: Path, change: dict[str, str]) -> None:
    (before,), _ = Packer().pack([_unit(tmp_path / "a", FILES)])
    (after,), _ = Packer().pack([_unit(tmp_path / "b", {**FILES, **change})])
    assert before.digest != after.digest


def test_the_unit_name_is_part_of_the_digest() -> None:
    manifest = {"x.py": "0" * 64}
    assert unit_digest("a", manifest) != unit_digest("b", manifest)


def test_syntax_error_names_file_and_line_and_holds_back_only_its_unit(tmp_path: Path) -> None:
    broken = _unit(tmp_path, {"pkg/__init__.py": "", "pkg/sub.py": "x = 1\ndef f(:\n"})
    fine = _unit(tmp_path, {"helpers.py": "def h(): return 1\n"}, name="helpers")
    packs, problems = Packer().pack([broken, fine])
    assert [p.name for p in packs] == ["helpers"]
    (problem,) = problems
    assert (problem.line, problem.unit) == (2, "pkg")
    assert str(problem) == f"{tmp_path / 'pkg/sub.py'}:2: {problem.message}"


def test_a_rewrite_within_one_clock_tick_is_still_seen(tmp_path: Path) -> None:
    unit = _unit(tmp_path, FILES)
    packer = Packer()
    (first,), _ = packer.pack([unit])
    path = tmp_path / "pkg/sub.py"
    stat = path.stat()
    path.write_text("VALUE = 7\n")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    (second,), _ = packer.pack([unit])
    assert second.digest != first.digest


def test_a_vanished_file_is_left_out_of_the_snapshot(tmp_path: Path) -> None:
    unit = _unit(tmp_path, FILES)
    (tmp_path / "pkg/data/table.json").unlink()
    (pack,), _ = Packer().pack([unit])
    assert "pkg/data/table.json" not in pack.manifest


def test_large_projects_compile_in_helper_processes_with_the_same_verdicts(tmp_path: Path) -> None:
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(4000))  # ~100 kB
    files = {f"pkg/m{i}.py": f"N = {i}\n" + body for i in range(30)}  # ~3 MB, all distinct
    files["pkg/__init__.py"] = ""
    files["pkg/bad.py"] = body + "def broken(:\n"
    packs, problems = Packer().pack([_unit(tmp_path, files)])
    assert packs == []
    assert [(p.path.endswith("pkg/bad.py"), p.line) for p in problems] == [(True, 12001)]


def test_only_the_files_a_watcher_names_are_looked_at_again(tmp_path: Path) -> None:
    unit = _unit(tmp_path, FILES)
    for rel in FILES:
        os.utime(tmp_path / rel, (1_000_000, 1_000_000))  # old files: cached digests are trusted
    packer = Packer()
    (first,), _ = packer.pack([unit])
    (tmp_path / "pkg/sub.py").write_text("VALUE = 2\n")
    (same,), _ = packer.pack([unit], changed={tmp_path / "pkg/__init__.py"})
    assert same.digest == first.digest  # not named: not even stat'ed
    (second,), _ = packer.pack([unit], changed={tmp_path / "pkg/sub.py"})
    assert second.manifest["pkg/sub.py"] != first.manifest["pkg/sub.py"]


def test_sources_that_compiled_once_are_not_compiled_again(tmp_path: Path) -> None:
    """The syntax cache is keyed by content: a file known to compile is trusted without a
    compile. Shown here by a cache that (wrongly) lists a broken file's digest."""
    broken = "def f(:\n"
    cache = SyntaxCache(tmp_path / "cache")
    (good,), _ = Packer(cache).pack([_unit(tmp_path / "a", FILES)])
    assert good.manifest["pkg/sub.py"] in cache.path.read_text().split()
    assert SyntaxCache(tmp_path / "cache").known() >= {good.manifest["pkg/sub.py"]}

    unit = _unit(tmp_path / "b", {**FILES, "pkg/sub.py": broken})
    packs, problems = Packer(SyntaxCache(tmp_path / "cache")).pack([unit])
    assert not packs and problems[0].line == 1  # broken files are never remembered
    # The digest of the broken file, planted in the cache:
    with cache.path.open("a") as f:
        f.write(file_digest(broken.encode()) + "\n" + "0123abc\n")  # and a torn line
    packs, problems = Packer(SyntaxCache(tmp_path / "cache")).pack([unit])
    assert [p.name for p in packs] == ["pkg"] and not problems


def test_an_unwritable_syntax_cache_only_means_compiling_again(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    cache = SyntaxCache(blocker / "cache")
    packs, problems = Packer(cache).pack([_unit(tmp_path / "a", FILES)])
    assert [p.name for p in packs] == ["pkg"] and not problems
    _, problems = Packer(cache).pack([_unit(tmp_path / "b", {"pkg/x.py": "def f(:\n"})])
    assert problems[0].line == 1


_WRITER = """
import os, sys, time
path, stop = sys.argv[1], sys.argv[2]
versions = [bytes([65 + i]) * 2_000_000 for i in range(2)]
n = 0
while not os.path.exists(stop):
    n += 1
    fd = os.open(path, os.O_WRONLY)
    for start in range(0, 2_000_000, 65536):
        os.pwrite(fd, versions[n % 2][start : start + 65536], start)
        time.sleep(0.001)  # a slow writer: half-written for about 40 ms each time
    os.close(fd)
    time.sleep(0.15)  # whole for a moment, as a saved file is
"""


def test_a_file_being_written_is_never_packed_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process rewrites a 2 MB file in place, 64 kB a millisecond; every pack holds one
    whole version of it, or raises StaleFile for the caller to pack again."""
    # A writer preempted mid-write for longer than the settle time would fool the check; on a
    # loaded 2-core machine (beside two CPU-bound processes) that happens at 50 ms. The
    # writer holds each version whole for 150 ms, so 100 ms still lets packs succeed.
    monkeypatch.setattr(shipit.project.pack, "_SETTLE_NS", 100_000_000)
    unit = _unit(tmp_path, {"pkg/__init__.py": "", "pkg/weights.bin": ""})
    path = tmp_path / "pkg/weights.bin"
    whole = {file_digest(bytes([65 + i]) * 2_000_000) for i in range(2)}
    path.write_bytes(b"A" * 2_000_000)
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(stop)])
    seen = set()
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                (pack,), _ = Packer().pack([unit])
                seen.add(pack.manifest["pkg/weights.bin"])
                with zipfile.ZipFile(io.BytesIO(pack.zip())) as zf:
                    seen.add(file_digest(zf.read("pkg/weights.bin")))
            except StaleFile:  # it never held still long enough: the caller packs again
                continue
    finally:
        stop.touch()
        writer.wait(timeout=30)
    assert seen and seen <= whole, f"{len(seen - whole)} half-written version(s) packed"
