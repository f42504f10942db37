"""Text for people: aligned columns for the reports' tables, sizes in bytes."""

from __future__ import annotations

from collections.abc import Sequence


def size_text(n: float, binary: bool = True) -> str:
    """Bytes in binary units, as the size keys take them, or in decimal ones.

    >>> size_text(1536), size_text(919, binary=False), size_text(6_600_000, binary=False)
    ('1.5 KiB', '919 B', '6.6 MB')
    """
    step, units = (1024, ("B", "KiB", "MiB", "GiB")) if binary else (1000, ("B", "kB", "MB", "GB"))
    for unit in units:
        if n < step or unit == units[-1]:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= step
    raise AssertionError


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
