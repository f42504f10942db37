"""How often one command reads the project: pyproject.toml parses, walks of the tree, reads
of each ``.py`` file. Runs each command in this process against an in-process cluster.

    python benchmarks/count_io.py            # sync, sync --dry-run, run (4 .py files)
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import io
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

import tomllib
from click.testing import CliRunner
from distributed import LocalCluster

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def counting(root: Path) -> Iterator[dict[str, collections.Counter[str]]]:
    """Count, below ``root`` and anywhere for pyproject.toml: parses, scandirs, opens."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    real_load, real_scandir, real_open = tomllib.load, os.scandir, io.open

    def load(f, *args, **kwargs):  # type: ignore[no-untyped-def]
        counts["parse"][str(getattr(f, "name", "?"))] += 1
        return real_load(f, *args, **kwargs)

    def scandir(path=".", *args, **kwargs):  # type: ignore[no-untyped-def]
        if not isinstance(path, int):
            counts["scan"][os.fsdecode(path)] += 1
        return real_scandir(path, *args, **kwargs)

    def opener(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = os.fsdecode(file) if isinstance(file, (str, bytes, os.PathLike)) else ""
        if name.endswith(".py") and name.startswith(str(root)):
            # The zip of what the cluster lacks reads again the files it sends (checking each
            # against the manifest): counted apart, as sends.
            sending = any(f.name == "zip" for f in traceback.extract_stack())
            counts["send" if sending else "read"][name] += 1
            if os.environ.get("COUNT_IO_TRACE") and name.endswith(os.environ["COUNT_IO_TRACE"]):
                frames = [f"{Path(f.filename).name}:{f.lineno}" for f in traceback.extract_stack()]
                print("  read from", " <- ".join(reversed(frames[-6:-1])), file=sys.__stderr__)
        return real_open(file, *args, **kwargs)

    tomllib.load, os.scandir, io.open, builtins.open = load, scandir, opener, opener  # type: ignore[assignment]
    try:
        yield counts
    finally:
        tomllib.load, os.scandir, io.open, builtins.open = (  # type: ignore[assignment]
            real_load, real_scandir, real_open, real_open,
        )  # fmt: skip


def summary(counts: dict[str, collections.Counter[str]], root: Path) -> str:
    own = str(root / "pyproject.toml")
    parses = counts["parse"].get(own, 0)
    others = sum(n for path, n in counts["parse"].items() if path != own)
    walks = counts["scan"].get(str(root), 0)
    reads = sorted(counts["read"].values()) or [0]
    sent = sum(counts["send"].values())
    return (
        f"pyproject.toml parsed {parses}x (other pyproject.toml files: {others}), "
        f"tree walked {walks}x, each .py read {reads[0]}-{reads[-1]}x "
        f"(+ {sent} reads to zip the files sent)"
    )


def main() -> None:
    from shipit.cli import main as cli

    with (
        tempfile.TemporaryDirectory(prefix="shipit-count-") as tmp,
        LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster,
    ):
        root = Path(tmp) / "montecarlo"
        shutil.copytree(REPO / "examples" / "montecarlo", root)
        (root / "script.py").write_text("print('ran')\n")
        os.utime(root / "script.py", (1e9, 1e9))  # an old file, as most of a project is
        address = cluster.scheduler_address
        runner = CliRunner()
        os.chdir(root)
        scenarios = {
            "sync": ["sync", "--scheduler", address],
            "sync --dry-run": ["sync", "--dry-run", "--scheduler", address],
            "run": ["run", "--scheduler", address, "script.py"],
        }
        for name, args in scenarios.items():
            with counting(root) as counts:
                result = runner.invoke(cli, args, catch_exceptions=False)
            status = "ok" if result.exit_code == 0 else f"exit {result.exit_code}"
            print(f"{name:<15} {summary(counts, root)}  [{status}]")
            if result.exit_code:
                print(result.output, file=sys.__stderr__)


if __name__ == "__main__":
    main()
