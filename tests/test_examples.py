"""Every example runs, at a small size, through `shipit run` on the cluster it starts itself."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

from .helpers import REPO, shipit

pytestmark = pytest.mark.cluster  # every test here starts a cluster or a shipit process

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None


def example(name: str, tmp_path: Path) -> Path:
    """A copy: running an example must not leave bytecode or anything else in the repository."""
    return Path(shutil.copytree(REPO / "examples" / name, tmp_path / name))


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        pytest.param(
            "paramsearch",
            ["search.py", "--trials", "64"],
            r"tried 64 settings; best rate=0\.1\d* momentum=0\.9\d* loss=0\.0\d+",
            id="parameter-search",
        ),
        pytest.param(
            "pi_pool",
            ["pool.py", "--tasks", "8", "--darts", "20000"],
            r"pi ~ 3\.1\d+ from 160,000 darts",
            id="pi-executor",
        ),
        pytest.param(
            "joblib_dask",
            ["features.py", "--docs", "200"],
            r"scored 200 documents; \d+ vocabulary hits",
            id="joblib-dask",
        ),
        pytest.param(
            "sklearn_grid",
            ["grid.py", "--samples", "300"],
            r"best shrink=0\.\d score=0\.\d+ \(5 candidates x 4 folds\)",
            id="sklearn-gridsearch",
            marks=pytest.mark.skipif(
                not HAS_SKLEARN, reason="scikit-learn is not installed: pip install .[examples]"
            ),
        ),
    ],
)
def test_example_runs_on_an_embedded_cluster(
    name: str, args: list[str], expected: str, tmp_path: Path
) -> None:
    folder = example(name, tmp_path)

    result = shipit("run", "--workers", "2", *args, cwd=folder, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.fullmatch(expected + r".*\n", result.stdout), result.stdout
    # In a pipe: shipit's two lines and no progress display.
    assert [line.split()[0] for line in result.stderr.splitlines()] == ["cluster", "ready"]
