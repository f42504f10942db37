"""Ask every node: run a stdlib-only function on the scheduler and on each worker at once.

Each worker answers on its own clock: one that the scheduler cannot reach, or that is busy
holding the GIL, becomes an error string for that worker after ``timeout`` instead of
holding up, or failing, the whole question.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from distributed import Client

from .byvalue import by_value
from .errors import ConnectionFailed, ProbeTimeout


@dataclass(frozen=True)
class Answers:
    """What the scheduler and each worker returned, or the error each raised, as a string."""

    scheduler: Any
    workers: dict[str, Any]
    errors: dict[str, str]  # address (the scheduler's too) -> why it gave no answer


def ask(
    client: Client,
    module: ModuleType,
    func: Callable[..., Any],
    *args: Any,
    timeout: float,
    scheduler: bool = True,
    per_worker: Callable[[str], tuple[Any, ...]] | None = None,
    workers: list[str] | None = None,
) -> Answers:
    """Call ``func`` (defined in the stdlib-only ``module``) everywhere; ``per_worker`` gives a
    worker's own arguments instead of ``args``; ``workers`` limits the question to those.

    >>> ask(client, nodecheck, nodecheck.describe, timeout=5).workers
    {'tcp://127.0.0.1:40331': {'python': '3.11.7', ...}}
    """
    if workers is None:
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    scheduler_address = str(getattr(client.scheduler, "address", "scheduler"))

    async def one(address: str) -> Any:
        call_args = per_worker(address) if per_worker else args
        answer = await asyncio.wait_for(
            client.run(func, *call_args, workers=[address], on_error="return", asynchronous=True),
            timeout,
        )
        return answer.get(address, KeyError(f"{address} left the cluster"))

    async def everyone() -> list[Any]:
        calls = [one(address) for address in workers]
        if scheduler:
            calls.append(
                asyncio.wait_for(client.run_on_scheduler(func, *args, asynchronous=True), timeout)
            )
        return await asyncio.gather(*calls, return_exceptions=True)

    with by_value(module):
        try:
            answers = client.sync(everyone, callback_timeout=timeout + 5)
        except (asyncio.TimeoutError, TimeoutError):
            raise ProbeTimeout(timeout) from None
    errors: dict[str, str] = {}
    results: dict[str, Any] = {}
    for address, answer in zip(workers, answers, strict=False):
        if isinstance(answer, BaseException):
            errors[address] = _why(answer, timeout)
        else:
            results[address] = answer
    on_scheduler = answers[-1] if scheduler else None
    if isinstance(on_scheduler, OSError):
        raise ConnectionFailed(scheduler_address, _why(on_scheduler, timeout), timeout)
    if isinstance(on_scheduler, BaseException):
        errors[scheduler_address] = _why(on_scheduler, timeout)
        on_scheduler = None
    return Answers(scheduler=on_scheduler, workers=results, errors=errors)


def _why(error: BaseException, timeout: float) -> str:
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return f"no answer within {timeout:g} s"
    text = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {text}".rstrip(": ")
