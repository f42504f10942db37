"""The watcher on real file events: bursts, and whether their files are whole."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipit.watcher import Changes, ChangeWatcher


@pytest.fixture
def bursts(tmp_path: Path) -> Iterator[tuple[Path, Iterator[Changes]]]:
    stop = threading.Event()
    with ChangeWatcher([tmp_path], lambda path: path.endswith(".py"), stop=stop) as watcher:
        time.sleep(0.2)  # the observer is watching
        yield tmp_path, (changes for changes in watcher if changes)


def test_a_file_closed_after_writing_ends_a_settled_burst(
    bursts: tuple[Path, Iterator[Changes]],
) -> None:
    root, changes = bursts
    (root / "a.py").write_text("X = 1\n")
    burst = next(changes)
    assert burst.paths == {str(root / "a.py")} and burst.settled


def test_a_file_still_open_for_writing_is_not_settled(
    bursts: tuple[Path, Iterator[Changes]],
) -> None:
    root, changes = bursts
    (root / "b.py").write_text("X = 1\n")
    assert next(changes).settled
    with open(root / "b.py", "a") as f:  # a writer that pauses longer than the debounce
        f.write("Y = 2\n")
        f.flush()
        burst = next(changes)
    assert burst.paths == {str(root / "b.py")} and not burst.settled
