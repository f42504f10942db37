"""The syntax check: every ``.py`` source compiled on the client before anything ships, in
helper processes when there is a lot of it. The user's code is compiled, never run.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ..report import SyntaxProblem

logger = logging.getLogger(__name__)

# Source compiles at about 10 MB/s per core; below this many bytes a helper process costs more.
_PARALLEL_COMPILE_BYTES = 2_000_000

Sources = Sequence[tuple[str, tuple[str, bytes]]]  # (digest, (path shown, source))


def compile_all(items: Sources) -> dict[str, SyntaxProblem | None]:
    """Each source's problem, None where it compiles, by digest."""
    total = sum(len(data) for _, (_, data) in items)
    workers = min(os.cpu_count() or 1, 8)
    if total < _PARALLEL_COMPILE_BYTES or workers < 2:
        return _compile_here(items)
    return _compile_in_processes(items, workers)


def _compile_here(
    items: Sources,
) -> dict[str, SyntaxProblem | None]:
    results: dict[str, SyntaxProblem | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarnings belong to the user's linter
        for digest, (shown, data) in items:
            try:
                compile(data, shown, "exec", dont_inherit=True)
                results[digest] = None
            except SyntaxError as e:
                results[digest] = SyntaxProblem(shown, e.lineno, e.msg)
            except ValueError as e:  # null bytes
                results[digest] = SyntaxProblem(shown, None, str(e))
    return results


# A helper interpreter started with -I: it imports nothing of the user's, and unlike
# multiprocessing it never re-runs the caller's __main__ script.
_CHECKER = f"""
import gc, pickle, sys, warnings
gc.disable()  # a short-lived process: collecting the compiler's garbage only costs time
warnings.simplefilter("ignore")
out = {{}}
for digest, (shown, data) in pickle.load(sys.stdin.buffer):
    try:
        compile(data, shown, "exec", dont_inherit=True)
        out[digest] = None
    except SyntaxError as e:
        out[digest] = (shown, e.lineno, e.msg)
    except ValueError as e:
        out[digest] = (shown, None, str(e))
pickle.dump(out, sys.stdout.buffer, protocol={pickle.HIGHEST_PROTOCOL})
"""


def _compile_in_processes(items: Sources, workers: int) -> dict[str, SyntaxProblem | None]:
    chunks: list[list[tuple[str, tuple[str, bytes]]]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for item in sorted(items, key=lambda i: -len(i[1][1])):
        lightest = loads.index(min(loads))
        chunks[lightest].append(item)
        loads[lightest] += len(item[1][1])

    def run(chunk: list[tuple[str, tuple[str, bytes]]]) -> dict[str, SyntaxProblem | None]:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", _CHECKER],
            input=pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL),
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            logger.debug("compile helper failed (%s); compiling here", proc.stderr[-500:])
            return _compile_here(chunk)
        raw = pickle.loads(proc.stdout)
        return {d: None if r is None else SyntaxProblem(*r) for d, r in raw.items()}

    results: dict[str, SyntaxProblem | None] = {}
    with ThreadPoolExecutor(workers) as pool:
        for part in pool.map(run, [c for c in chunks if c]):
            results.update(part)
    return results
