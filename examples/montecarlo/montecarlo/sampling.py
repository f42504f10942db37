import random

# Edit me while `shipit watch` runs: the next task on every worker uses the new value.
SAMPLES_PER_TASK = 200_000


def hits(seed: int) -> tuple[int, int]:
    """Throw darts at the unit square; count those inside the quarter circle."""
    rng = random.Random(seed)
    inside = sum(rng.random() ** 2 + rng.random() ** 2 <= 1.0 for _ in range(SAMPLES_PER_TASK))
    return inside, SAMPLES_PER_TASK
