"""Edit -> fresh on every worker: shipit.watch against Dask's UploadDirectory(restart_workers=True).

    .venv/bin/python benchmarks/bench_watch.py [--edits 25] [--workers 4]

Target: shipit's median edit -> fresh <= 50 ms, and >= 20x faster than the anchor measured
in the same run.
"""

from __future__ import annotations

import statistics
import tempfile
import textwrap
from pathlib import Path

import _harness as h
from distributed.diagnostics.plugin import UploadDirectory

TARGET_MS = 50.0
TARGET_RATIO = 20.0

MODULES = {
    "__init__.py": '"""A small package under development."""\n',
    "config.py": """
        SEED = 42
        SCALE = 1.5
        NAMES = ("alpha", "beta", "gamma")
    """,
    "model.py": '''
        from dataclasses import dataclass

        from .config import SCALE


        @dataclass
        class Point:
            """A point in the plane."""

            x: float
            y: float

            def scaled(self) -> "Point":
                return Point(self.x * SCALE, self.y * SCALE)
    ''',
    "util.py": '''
        def chunks(items, size):
            """Yield lists of at most ``size`` items."""
            for start in range(0, len(items), size):
                yield items[start : start + size]
    ''',
}


def render_sub(value: int) -> str:
    return f"VALUE = {value}\n\n\ndef value():\n    return VALUE\n"


def make_project(root: Path) -> Path:
    """Write bench_pkg into ``root``; return the module the edits rewrite."""
    package = root / "bench_pkg"
    package.mkdir(parents=True)
    for name, text in MODULES.items():
        (package / name).write_text(textwrap.dedent(text).lstrip())
    probe = package / "sub.py"
    probe.write_text(render_sub(0))
    return probe


def main() -> None:
    args = h.parse_args(__doc__, edits=25)
    with tempfile.TemporaryDirectory(prefix="shipit-bench-") as tmp:
        root = Path(tmp) / Path(tmp).name  # UploadDirectory extracts to <scratch>/<name>
        probe = make_project(root)
        func = h.import_from(root, "bench_pkg.sub").value
        print(f"bench_watch: {args.edits} edits per mechanism, {args.workers} workers; {h.load()}")

        with h.local_cluster(args.workers) as client:
            ours = h.watch_edits(client, root, probe, func, render_sub, args.edits)
        with h.local_cluster(args.workers) as client:

            def upload() -> None:  # a fresh plugin per save, as a user would
                client.register_plugin(
                    UploadDirectory(root, restart_workers=True, update_path=True)
                )

            anchor = h.upload_edits(client, probe, func, render_sub, args.edits, upload)
        notes = h.after_upload_directory(root)

    h.header("edit -> every worker returns the new value")
    h.row("shipit.watch  edit -> fresh", ours.edit_ms, ours.rounds)
    h.row("shipit.watch  file event -> all confirmed", ours.event_ms)
    h.row("one poll round, nothing to wait for", ours.idle_round_ms)
    h.row("UploadDirectory(restart_workers=True)", anchor.edit_ms, anchor.rounds)
    shipit_ms = statistics.median(ours.edit_ms)
    ratio = statistics.median(anchor.edit_ms) / shipit_ms
    print(f"  ratio UploadDirectory / shipit (medians): {ratio:.1f}x")
    print(f"  shipit sent {statistics.median(ours.bytes_sent):,.0f} B per edit (median)")
    for note in notes:
        print(f"  note: {note}")
    print(f"  after: {h.load()}")

    met = shipit_ms <= TARGET_MS and ratio >= TARGET_RATIO
    print(
        f"\nTARGET {'MET' if met else 'MISSED'}: shipit median edit -> fresh {shipit_ms:.1f} ms "
        f"(target <= {TARGET_MS:.0f}), {ratio:.1f}x faster than UploadDirectory "
        f"(target >= {TARGET_RATIO:.0f}x)"
    )


if __name__ == "__main__":
    main()
