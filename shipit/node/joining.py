"""Packages for workers that join: what shipit installed on the cluster, installed again there.

After every install (``shipit sync``, or a save under ``shipit watch`` that needs a package),
the client records on the scheduler, per project, the pinned requirements every node needs,
pip's options and timeout, and the wheels it shipped: constant state, one entry per project,
replaced by the next install. A worker process that joins (a late worker, an adaptive
cluster scaling up, a nanny's replacement in a fresh environment) installs the requirements
it lacks before it takes the current code, through the node's own pip runner (one pip at a
time per environment on a host, the same timeout), and tells the scheduler how that went:
until then it is not counted as holding the current code, and a failure shows in the
scheduler's state (``status``, ``check``, ``watch``).

Standard library only, like every node module.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import logging
import re
import sys
import time
from typing import Any

from . import pip

logger = logging.getLogger("distributed.shipit")

# How long a joining worker's start waits for its install before it goes on without it
# (its heartbeats start only then; the install itself carries on, within its pip timeout).
JOIN_WAIT = 120.0


def record(
    state: dict[str, Any],
    project: str,
    requirements: list[str],
    options: list[str],
    wheels: dict[str, bytes],
    timeout: float,
    python: str,
) -> None:
    """The scheduler's side: remember what the project needs on every node (no entry when
    it needs nothing)."""
    records = state.setdefault("requirements", {})
    # Wheels of earlier installs stay while a pin still names them (a local project built
    # once, when the nodes first lacked it).
    earlier = records.get(project, {}).get("wheels", {})
    kept = {n: b for n, b in earlier.items() if _pin_of(n) in requirements}
    if requirements:
        records[project] = {
            "requirements": sorted(requirements),
            "options": list(options),
            "wheels": {**kept, **wheels},
            "timeout": float(timeout),
            "python": python,
        }
    else:
        records.pop(project, None)


def _pin_of(wheel: str) -> str:
    """``Foo_Bar-1.0-py3-none-any.whl`` -> ``foo-bar==1.0``."""
    name, _, rest = wheel.partition("-")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={rest.partition('-')[0]}"


def shown(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The records as ``shipit_state`` gives them: the wheels by name only."""
    return {
        project: {**r, "wheels": sorted(r["wheels"])}
        for project, r in state.get("requirements", {}).items()
    }


def wheels_of(state: dict[str, Any], project: str) -> dict[str, bytes]:
    return dict(state.get("requirements", {}).get(project, {}).get("wheels", {}))


def lacking(requirements: list[str]) -> list[str]:
    """The ``name==version`` pins this process's environment does not hold as pinned."""
    importlib.invalidate_caches()
    missing = []
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        try:
            have: str | None = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        if have != version:
            missing.append(requirement)
    return missing


def held(requirements: list[str]) -> list[str]:
    """Of these pins, those this process's environment holds (``shipit status``)."""
    missing = set(lacking(requirements))
    return [r for r in requirements if r not in missing]


def _mine(records: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The records whose client runs this Python minor (tasks from others cannot run here)."""
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return [(p, r) for p, r in sorted(records.items()) if r.get("python") in (None, minor)]


async def install_on_join(worker: Any, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Install what this joining worker lacks of every project's record; tell the scheduler
    before (``installing``) and after (``ok`` or ``failed``). Returns the last report."""
    loop = asyncio.get_running_loop()
    mine = _mine(records)
    wanted = sorted({r for _, rec in mine for r in rec["requirements"]})
    missing = await loop.run_in_executor(None, lacking, wanted) if wanted else []
    report: dict[str, Any] = {"state": "ok", "requirements": wanted, "installed": []}
    if not missing:
        await _tell(worker, report)
        return report
    await _tell(worker, {**report, "state": "installing", "lacking": missing})
    started = time.monotonic()
    installed: list[str] = []
    errors: list[str] = []
    for project, rec in mine:
        needed = [r for r in rec["requirements"] if r in missing]
        if not needed:
            continue
        try:
            wheels = await worker.scheduler.shipit_wheels(project=project) if rec["wheels"] else {}
        except Exception as e:  # the scheduler went: the next start tries again
            errors.append(f"could not fetch the wheels of {project}: {e}")
            continue
        answer = await pip.pip_install(needed, rec["options"], wheels, rec["timeout"])
        installed += answer.get("installed") or []
        if not answer.get("ok"):
            errors.append(str(answer.get("error") or "pip failed"))
        missing = [r for r in missing if r not in needed]
    report = {
        **report,
        "state": "failed" if errors else "ok",
        "installed": installed,
        "error": "; ".join(errors) or None,
        "lacking": await loop.run_in_executor(None, lacking, wanted),
        "seconds": time.monotonic() - started,
    }
    if errors:
        logger.warning("shipit: could not install %s: %s", " ".join(wanted), report["error"])
    else:
        logger.info("shipit: installed %s on joining", " ".join(installed) or "nothing")
    await _tell(worker, report)
    return report


async def _tell(worker: Any, report: dict[str, Any]) -> None:
    worker._shipit_packages = report  # the probe reads it (shipit check)
    try:
        await worker.scheduler.shipit_packages(address=worker.address, report=report)
    except Exception as e:  # an older scheduler agent, or the scheduler went
        logger.debug("shipit: could not tell the scheduler about packages: %s", e)
