"""Brute-force parameter search: one task per setting, results as they finish, the best kept.

shipit run search.py --trials 400          # a local cluster for the run
shipit run --scheduler tcp://HOST:8786 search.py
"""

import argparse
import sys

from distributed import Client, as_completed
from tuning.grid import settings
from tuning.model import loss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=400)
    options = parser.parse_args()
    with Client() as client:  # DASK_SCHEDULER_ADDRESS, set by `shipit run`
        grid = settings(options.trials)
        rates, momenta = zip(*grid, strict=True)
        futures = client.map(loss, rates, momenta, pure=False)
        where = dict(zip(futures, grid, strict=True))
        best = (float("inf"), grid[0])
        live = sys.stderr.isatty()  # a progress line on a terminal, nothing in a pipe
        for done, future in enumerate(as_completed(futures), 1):
            best = min(best, (future.result(), where[future]))
            if live:
                print(f"\r{done}/{len(futures)} done; best {best[0]:.4f}", end="", file=sys.stderr)
        if live:
            print(file=sys.stderr)
        score, (rate, momentum) = best
        print(
            f"tried {len(grid)} settings; best rate={rate:.4g} momentum={momentum:.3f} "
            f"loss={score:.4f}"
        )


if __name__ == "__main__":
    main()
