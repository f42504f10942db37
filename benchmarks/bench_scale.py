"""A cluster of many workers on one host: how the first sync, edit -> fresh and what leaves the
scheduler grow from 4 to 16 to 32 workers, beside ``UploadDirectory(restart_workers=True)``
at the same sizes.

    .venv/bin/python benchmarks/bench_scale.py [--edits 5] [--sizes 4,16,32]

The project is bench_large's generated package at a quarter of its size (~530 files, ~5 MB).
Goal: what leaves the scheduler for a push is one copy per host (here: one, whatever the
number of workers), and edit -> fresh grows no worse than linearly with the hosts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _harness as h
from bench_large import make_project
from distributed import Client
from distributed.diagnostics.plugin import UploadDirectory

import shipit


def sent_bytes(client: Client) -> int:
    def sent(dask_scheduler: Any) -> int:
        return int(dask_scheduler.plugins["shipit"].state()["sent_bytes"])

    return int(client.run_on_scheduler(sent))


def one_size(n: int, root: Path, probe: Path, func: Any, render: h.Render, edits: int) -> dict:
    out: dict[str, Any] = {}
    probe.write_text(render(0))  # what the idle rounds of watch_edits expect
    with h.local_cluster(n) as client:
        t0 = time.perf_counter()
        report = shipit.sync(client, root, install=False)
        out["sync_s"] = time.perf_counter() - t0
        out["sync_sent"] = sent_bytes(client)
        out["payload"] = sum(u.bytes_sent for u in report.units)
        before = sent_bytes(client)
        out["watch"] = h.watch_edits(client, root, probe, func, render, edits)
        out["edit_sent"] = (sent_bytes(client) - before) / edits
    with h.local_cluster(n) as client:
        out["upload"] = h.upload_edits(
            client, probe, func, render, 2 if n > 16 else 3,
            lambda: client.register_plugin(
                UploadDirectory(root, restart_workers=True, update_path=True)
            ),
        )  # fmt: skip
    h.after_upload_directory(root)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--sizes", default="4,16,32")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"bench_scale: {h.load()}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="shipit-bench-") as tmp:
        root = Path(tmp) / Path(tmp).name
        probe, render = make_project(root, modules_per_folder=5)
        files = list(root.rglob("*.py"))
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        print(f"  project: {len(files):,} files, {megabytes:.1f} MB")
        func = h.import_from(root, ".".join(probe.relative_to(root).with_suffix("").parts)).value
        for n in sizes:
            results[n] = one_size(n, root, probe, func, render, args.edits)
            print(f"  {n} workers done; {h.load()}", flush=True)
    print(f"\n{'workers':>8}{'first sync':>12}{'sent':>10}{'x payload':>10}"
          f"{'edit->fresh':>13}{'sent/edit':>11}{'UploadDir':>11}{'ratio':>8}")  # fmt: skip
    for n, r in results.items():
        ours = statistics.median(r["watch"].edit_ms)
        theirs = statistics.median(r["upload"].edit_ms)
        print(
            f"{n:>8}{r['sync_s']:>10.2f} s{r['sync_sent'] / 1e6:>7.1f} MB"
            f"{r['sync_sent'] / max(r['payload'], 1):>9.2f}x{ours:>10.0f} ms"
            f"{r['edit_sent']:>9.0f} B{theirs:>8.0f} ms{theirs / ours:>7.1f}x"
        )
    print("  sent: file bytes the scheduler sent to workers for the first sync (all workers share")
    print("  one host here); UploadDir: UploadDirectory(restart_workers=True) edit -> fresh")
    print(f"  after: {h.load()}")
    first, last = results[sizes[0]], results[sizes[-1]]
    egress = last["sync_sent"] / max(last["payload"], 1)
    print(f"TARGET {'MET' if egress < 1.5 else 'MISSED'}: one copy per host at {sizes[-1]} "
          f"workers ({egress:.2f}x the payload)")  # fmt: skip
    growth = statistics.median(last["watch"].edit_ms) / statistics.median(first["watch"].edit_ms)
    print(f"  edit -> fresh grew {growth:.1f}x from {sizes[0]} to {sizes[-1]} workers (one host)")


if __name__ == "__main__":
    main()
