"""Text for people: sizes, aligned columns, counted nouns, a few names, paths, error lines.

One copy of each: the reports, the errors and the command line all use these.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence


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


def plural(n: int) -> str:
    """The ending of a counted English noun.

    >>> f"1 worker{plural(1)}, 3 worker{plural(3)}"
    '1 worker, 3 workers'
    """
    return "" if n == 1 else "s"


def names(addresses: Collection[str], shown: int = 3) -> str:
    """A few names, sorted, then how many more.

    >>> names(["tcp://c", "tcp://a", "tcp://b", "tcp://d"])
    'tcp://a, tcp://b, tcp://c +1 more'
    """
    first = sorted(addresses)[:shown]
    more = len(addresses) - len(first)
    return ", ".join(first) + (f" +{more} more" if more else "")


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as the user would type it (relative to the current folder when inside it),
    safe to print: bytes that are not UTF-8 shown as \\xNN escapes.

    >>> shown_path(os.path.join(os.getcwd(), "pkg", "sub.py")) == os.path.join("pkg", "sub.py")
    True
    """
    text, cwd = os.fsdecode(path), os.getcwd()
    if text.startswith(cwd + os.sep):
        text = text[len(cwd) + 1 :]
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name when it has none.

    >>> first_line(OSError("Connection refused\\nmore")), first_line(TimeoutError())
    ('Connection refused', 'TimeoutError')
    """
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
