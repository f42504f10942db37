"""A stand-in for an expensive simulation: the loss of one parameter setting."""

import math
import random


def loss(rate: float, momentum: float, seed: int = 0) -> float:
    """Lower is better; noisy like a real training run, with its best near (0.1, 0.9)."""
    rng = random.Random(f"{rate}-{momentum}-{seed}")
    noise = sum(rng.random() for _ in range(2_000)) / 2_000 - 0.5
    return (math.log10(rate) + 1) ** 2 + 4 * (momentum - 0.9) ** 2 + 0.01 * noise
