"""Ask every node: run a stdlib-only function on the scheduler and on each worker at once.

The one place shipit fans a question out to the cluster, sending the node-side module by
value, in two ways:

- :func:`ask` (status, doctor): each worker answers on its own clock. One that the
  scheduler cannot reach, or that is busy holding the GIL, becomes an error string for that
  worker after ``timeout`` instead of holding up, or failing, the whole question.
- :func:`ask_at_once` (the parity check, the install's environments): one ``client.run``
  for every worker under one clock. A worker that does not answer in time fails the whole
  question with :class:`ProbeTimeout`: a version check that cannot hear every node must
  not pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from distributed import Client

from .agent import on_node
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
    """Call ``func`` (a function of ``module``, in ``shipit.node``) everywhere, sent as
    source; ``per_worker`` gives a worker's own arguments instead of ``args``; ``workers``
    limits the question to those.

    Example::

        ask(client, nodecheck, nodecheck.describe, timeout=5).workers
        # {'tcp://127.0.0.1:40331': {'python': '3.11.7', ...}}
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

    func = on_node(func)
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


def ask_at_once(
    client: Client, module: ModuleType, func: Callable[..., Any], *args: Any, timeout: float
) -> tuple[Any, Any]:
    """Call ``func`` (a function of ``module``, in ``shipit.node``, sent as source) on the
    scheduler and every worker in one go; the scheduler's answer and the workers' (address ->
    answer), each the exception it raised instead where it raised one. Raises
    :class:`ProbeTimeout` after ``timeout``.

    Example::

        scheduler, workers = ask_at_once(client, nodeinfo, nodeinfo.probe, names, timeout=10)
    """

    remote = on_node(func)

    async def both() -> Any:
        return await asyncio.gather(
            client.run_on_scheduler(remote, *args, asynchronous=True),
            client.run(remote, *args, on_error="return", asynchronous=True),
            return_exceptions=True,
        )

    try:
        scheduler, workers = client.sync(both, callback_timeout=timeout)
    except (asyncio.TimeoutError, TimeoutError):
        raise ProbeTimeout(timeout) from None
    return scheduler, workers


def _why(error: BaseException, timeout: float) -> str:
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return f"no answer within {timeout:g} s"
    text = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {text}".rstrip(": ")
