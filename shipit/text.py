"""Aligned text columns, for the reports' tables."""

from __future__ import annotations

from collections.abc import Sequence


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Each row as one line, its cells padded to the widest of their column; the last cell is
    not padded.

    >>> aligned([("node", "python"), ("client", "3.11.7")])
    ['node    python', 'client  3.11.7']
    """
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
        for row in rows
    ]
