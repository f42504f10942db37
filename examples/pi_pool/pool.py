"""Monte Carlo estimate of pi, written for concurrent.futures: the pool code people scale
from multiprocessing. Swap the executor and nothing else changes.

    shipit run pool.py --tasks 64 --darts 100000
"""

import argparse
import concurrent.futures

from darts import inside
from distributed import Client


def estimate(pool: concurrent.futures.Executor, tasks: int, darts: int) -> float:
    hits = sum(pool.map(inside, range(tasks), [darts] * tasks))
    return 4 * hits / (tasks * darts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--darts", type=int, default=100_000)
    options = parser.parse_args()
    with Client() as client, client.get_executor(pure=False) as pool:
        # was: with concurrent.futures.ProcessPoolExecutor() as pool:
        pi = estimate(pool, options.tasks, options.darts)
    print(f"pi ~ {pi:.5f} from {options.tasks * options.darts:,} darts")


if __name__ == "__main__":
    main()
