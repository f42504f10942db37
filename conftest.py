"""Fixtures for everything pytest collects here: the tests and the doctests of shipit/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def syntax_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The syntax cache of this test run, not the user's; subprocesses (the CLI) inherit it."""
    folder = tmp_path_factory.mktemp("syntax-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHIPIT_CACHE_DIR", str(folder))
        yield folder
