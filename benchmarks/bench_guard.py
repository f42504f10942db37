"""What shipit.guard adds to a submission, against client.get_versions(check=True).

    .venv/bin/python benchmarks/bench_guard.py [--submissions 2000] [--calls 50]

Target: with nothing changed, the guard costs at most 50 us per submission at any number of
workers. 32 workers on 2 cores: LocalCluster(processes=False), every worker in this process.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from distributed import Client, LocalCluster

import shipit

WORKERS = (1, 8, 32)


def noop(x: int) -> int:
    return x


def median_us(call: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000


def submit_us(client: Client, guard: shipit.Guard, n: int) -> tuple[float, float]:
    """Median wall time of one client.submit without and with the guard, in alternating
    batches of 100 so that drift in the cluster's load hits both alike."""
    sends = {False: guard._send, True: guard._guarded_send}
    times: dict[bool, list[int]] = {False: [], True: []}
    for batch in range(2 * n // 100):
        guarded = bool(batch % 2)
        client._graph_to_futures = sends[guarded]
        futures = []
        for i in range(100):
            t0 = time.perf_counter_ns()
            futures.append(client.submit(noop, i, pure=False))
            times[guarded].append(time.perf_counter_ns() - t0)
        client.gather(futures)
    client._graph_to_futures = guard._guarded_send
    return statistics.median(times[False]) / 1000, statistics.median(times[True]) / 1000


def measure(n_workers: int, project: Path, args: argparse.Namespace) -> dict[str, float]:
    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(n_workers)
        versions_ms = median_us(lambda: client.get_versions(check=True), args.calls) / 1000
        with shipit.guard(client, project) as guard:
            assert guard.report is not None and guard.report.ok, guard.report
            submit_us(client, guard, 200)  # warm up
            plain, guarded = submit_us(client, guard, args.submissions)
            assert guard.checks == 1, "the verdict was not cached"
            # The check alone: the guard's wrapper around a send that does nothing.
            send, guard._send = guard._send, lambda *a, **k: None
            try:
                check_us = median_us(lambda: client._graph_to_futures(None, [], None), 100_000)
            finally:
                guard._send = send
            checks_before = guard.checks

            def recheck() -> None:
                guard.invalidate()
                client.submit(noop, 0, pure=False)

            recheck_ms = median_us(recheck, args.calls // 5 or 1) / 1000
            assert guard.checks > checks_before
    return {
        "check_us": check_us,
        "plain_us": plain,
        "guarded_us": guarded,
        "versions_ms": versions_ms,
        "recheck_ms": recheck_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=2000, help="submissions per median")
    parser.add_argument("--calls", type=int, default=50, help="get_versions calls per median")
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", "Port 8787 is already in use", UserWarning)
    project = Path(tempfile.mkdtemp(prefix="bench-guard-"))
    (project / "job.py").write_text("import dask\nimport toolz\n")

    print("LocalCluster(processes=False): every worker in this process, so 32 fit on 2 cores")
    one, five, _ = os.getloadavg()
    print(f"load avg {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores\n")
    print(
        f"{'workers':>7}  {'guard check':>11}  {'submit':>9}  {'submit+guard':>12}  "
        f"{'get_versions(check=True)':>24}  {'ratio':>7}  {'re-check':>9}"
    )
    for n in WORKERS:
        r = measure(n, project, args)
        print(
            f"{n:>7}  {r['check_us']:>8.2f} us  {r['plain_us']:>6.0f} us  "
            f"{r['guarded_us']:>9.0f} us  {r['versions_ms']:>21.2f} ms  "
            f"{r['versions_ms'] * 1000 / r['check_us']:>6.0f}x  {r['recheck_ms']:>6.1f} ms"
        )
    print(
        "\nguard check: median cost of the guard itself per submission (cached verdict);"
        "\nsubmit / submit+guard: median client.submit without and with the guard;"
        "\nratio: get_versions(check=True) / guard check; re-check: a submission after an"
        "\ninvalidation (a new worker, a sync), which probes every node again."
    )


if __name__ == "__main__":
    main()
