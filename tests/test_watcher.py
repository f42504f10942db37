"""The watcher on real file events: bursts, and whether their files are whole."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipit.watcher import Changes, ChangeWatcher


@pytest.fixture
def bursts(tmp_path: Path) -> Iterator[tuple[Path, Iterator[Changes]]]:
    stop = threading.Event()
    watched = tmp_path / "watched"
    watched.mkdir()
    accept = lambda path: path.endswith(".py")  # noqa: E731
    with ChangeWatcher([tmp_path], accept, tick=0.05, stop=stop) as watcher:
        changes = iter(watcher)
        # A handshake, not a sleep: the observer is watching once it reports a file written
        # after it started (written again until it does: a write before the start is lost).
        sentinel = str(tmp_path / "ready.py")
        for attempt in range(200):
            Path(sentinel).write_text(f"# {attempt}\n")
            if sentinel in next(changes).paths:
                break
        else:
            raise AssertionError("the observer never reported a file")
        yield (
            watched,
            (
                Changes(c.paths - {sentinel}, c.first_event, c.settled)
                for c in changes
                if c.paths - {sentinel}
            ),
        )


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
