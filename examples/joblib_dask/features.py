"""joblib with the Dask backend: existing `Parallel(...)` code, run on the cluster.

    shipit run features.py --docs 2000

The corpus is scattered once (`scatter=[...]`), not sent with every call; `batch_size`
groups calls into tasks and `pre_dispatch` bounds how many are queued ahead.
"""

import argparse
import random

from distributed import Client
from joblib import Parallel, delayed, parallel_backend
from textstats import score

WORDS = ["dask", "worker", "graph", "task", "future", "cluster", "node", "shard"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=2_000)
    options = parser.parse_args()
    rng = random.Random(0)
    corpus = [" ".join(rng.choices(WORDS, k=200)) for _ in range(options.docs)]
    vocabulary = frozenset(WORDS[:3])
    with Client(), parallel_backend("dask", scatter=[corpus]):
        results = Parallel(batch_size=50, pre_dispatch="4*n_jobs")(
            delayed(score)(i, corpus, vocabulary) for i in range(options.docs)
        )
    best = max(results, key=lambda r: r[1])
    total = sum(hits for _, hits in results)
    print(f"scored {len(results)} documents; {total} vocabulary hits; richest #{best[0]}")


if __name__ == "__main__":
    main()
