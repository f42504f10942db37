"""The settings to try."""

import itertools


def settings(trials: int) -> list[tuple[float, float]]:
    """About ``trials`` (rate, momentum) pairs on a log-spaced grid of rates."""
    side = max(2, round(trials**0.5))
    rates = [10 ** (-3 + 3 * i / (side - 1)) for i in range(side)]
    momenta = [0.5 + 0.49 * i / (side - 1) for i in range(side)]
    return list(itertools.product(rates, momenta))
