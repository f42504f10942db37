"""The import scan: what the text scan costs, and what telling optional imports apart adds.

    .venv/bin/python benchmarks/bench_scan.py [--rounds 15] [--sympy DIR]

On bench_large's generated package (2,100 files, 21 MB) and, given ``--sympy`` (an unpacked
sdist; bench_real.py caches one), a real package full of guarded imports. The anchor is the
text scan alone (``names_in``), run in the same rounds. Target: the guard scan adds at most
10% on the generated package.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import _harness as h
from bench_large import make_project

from shipit.project.imports import guarded_names, names_in


def medians(sources: list[bytes], rounds: int) -> tuple[float, float]:
    text, guard = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for source in sources:
            names_in(source)
        text.append(time.perf_counter() - started)
        started = time.perf_counter()
        for source in sources:
            guarded_names(source)
        guard.append(time.perf_counter() - started)
    return statistics.median(text) * 1000, statistics.median(guard) * 1000


def report(label: str, sources: list[bytes], rounds: int) -> None:
    text, guard = medians(sources, rounds)
    size = sum(map(len, sources)) / 1e6
    print(
        f"{label}: {len(sources)} files, {size:.1f} MB: text scan {text:.0f} ms, guard scan "
        f"+{guard:.0f} ms ({guard / text:.0%} more); files with a guarded import: "
        f"{sum(bool(guarded_names(s)) for s in sources)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sympy", type=Path, help="an unpacked sympy sdist")
    args = parser.parse_args()
    print(f"load: {h.load()}")
    with tempfile.TemporaryDirectory(prefix="shipit-scan-") as folder:
        make_project(Path(folder))
        report("generated", [p.read_bytes() for p in Path(folder).rglob("*.py")], args.rounds)
    if args.sympy is not None:
        sources = [p.read_bytes() for p in (args.sympy / "sympy").rglob("*.py")]
        report("sympy", sources, max(3, args.rounds // 3))


if __name__ == "__main__":
    main()
