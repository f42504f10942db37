"""Throw darts at the unit square; count those inside the quarter circle."""

import random


def inside(seed: int, darts: int) -> int:
    rng = random.Random(seed)
    return sum(rng.random() ** 2 + rng.random() ** 2 <= 1.0 for _ in range(darts))
