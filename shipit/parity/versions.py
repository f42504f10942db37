"""Compare what the client, the scheduler and each worker have: plain dicts in, rows out.

Each node's facts are what ``shipit.nodeinfo.probe`` returns. Nothing here touches a
cluster, the disk or the environment, so every rule is tested with plain data.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict
from typing import Any

from ..report import Severity, VersionRow
from ..text import names, plural

Facts = Mapping[str, Any]

# Dask's own stack: every node must agree on these (distributed.versions lists the same).
DASK_STACK = ("dask", "distributed", "cloudpickle", "msgpack", "toolz", "tornado")
# Compared where present: a version difference is an error, absence on some nodes a warning.
DASK_OPTIONAL = ("numpy", "pandas", "lz4")


def compare(
    client: Facts,
    scheduler: Facts,
    workers: Mapping[str, Facts],
    wanted: Mapping[str, bool],
    *,
    severity: Mapping[str, str] | None = None,
    declared: Mapping[str, str] | None = None,
    optional: Collection[str] = (),
) -> tuple[VersionRow, ...]:
    """Rows for Python, the platform, each wanted distribution and each shipped unit.

    ``wanted`` maps a distribution's canonical name to True when every node must have it,
    False when only its version must agree where present (numpy, pandas, lz4).
    ``severity`` overrides the level of a row that differs, by row name. ``declared`` maps
    the distributions the project requires to the project's name: one installed nowhere, not
    even on the client, is a warning row (nothing can install it at the client's version).
    ``optional`` names distributions the code runs without (guarded imports): compared where
    a node has them, a different version a warning; absent is fine.

    Example::

        rows = compare(client, scheduler, {"tcp://w1": w1}, {"dask": True})
        [(r.package, r.severity) for r in rows]
        # [('python', 'ok'), ('platform', 'ok'), ('dask', 'ok')]
    """
    nodes = _Nodes(client, scheduler, workers)
    rows = [_python_row(nodes), _platform_row(nodes), *_probe_rows(scheduler, workers)]
    for name, required in wanted.items():
        rows += _package_row(name, required, nodes, (declared or {}).get(name))
    rows += [row for name in optional if (row := _optional_row(name, nodes)) is not None]
    rows += _code_rows(nodes)
    rows += _joined_rows(nodes)
    overrides = severity or {}
    return tuple(
        _override(row, overrides[row.package]) if row.package in overrides else row for row in rows
    )


class _Nodes:
    """The client, then the scheduler and the workers that answered the probe."""

    CLIENT, SCHEDULER = "client", "scheduler"

    def __init__(self, client: Facts, scheduler: Facts, workers: Mapping[str, Facts]) -> None:
        self.facts = {self.CLIENT: client}
        if "error" not in scheduler:
            self.facts[self.SCHEDULER] = scheduler
        self.facts.update((a, f) for a, f in sorted(workers.items()) if "error" not in f)

    def row(
        self, name: str, kind: Any, cells: Mapping[str, str], severity: Severity, hint: str
    ) -> VersionRow:
        workers = {k: v for k, v in cells.items() if k not in (self.CLIENT, self.SCHEDULER)}
        return VersionRow(
            package=name,
            kind=kind,
            client=cells.get(self.CLIENT, "?"),
            scheduler=cells.get(self.SCHEDULER, "?"),
            workers=group_workers(workers, cells.get(self.CLIENT)),
            severity=severity,
            suggestion=hint if severity != "ok" else "",
            by_worker=workers,
        )

    def where(self, keys: Collection[str], verb: str = "") -> str:
        """Where ``keys`` are, in words; with ``verb`` ("run"), followed by it in agreement:
        ``"the scheduler runs"``, ``"the scheduler and 1 worker (tcp://a) run"``."""
        workers = [k for k in keys if k not in (self.CLIENT, self.SCHEDULER)]
        text = where(self.SCHEDULER in keys, workers, client=self.CLIENT in keys)
        if not verb:
            return text
        return f"{text} {verb}{'s' if len(keys) == 1 and len(workers) <= 1 else ''}"


def _python_row(nodes: _Nodes) -> VersionRow:
    def cell(f: Facts) -> str:
        name = f.get("implementation", "cpython")
        return f["python"] if name == "cpython" else f"{name} {f['python']}"

    client = nodes.facts[nodes.CLIENT]
    cells = {k: cell(f) for k, f in nodes.facts.items()}
    other_minor = [k for k, f in nodes.facts.items() if _minor(f) != _minor(client)]
    other_patch = [k for k in cells if cells[k] != cells[nodes.CLIENT]]
    if other_minor:
        wanted = ".".join(_minor(client)[1:])
        return nodes.row("python", "python", cells, "error", (
            f"use Python {wanted} on {nodes.where(other_minor)}: "
            "pickled tasks need the client's major.minor"
        ))  # fmt: skip
    hint = f"Python patch versions differ on {nodes.where(other_patch)}; usually harmless"
    return nodes.row("python", "python", cells, "warning" if other_patch else "ok", hint)


def _minor(f: Facts) -> tuple[str, ...]:
    """``("cpython", "3", "11")``: what pickled tasks need to agree on."""
    return (f.get("implementation", "cpython"), *str(f["python"]).split(".")[:2])


def _platform_row(nodes: _Nodes) -> VersionRow:
    cells = {k: f"{f['platform']}-{f['machine']}" for k, f in nodes.facts.items()}
    other = [k for k in cells if cells[k] != cells[nodes.CLIENT]]
    hint = f"{nodes.where(other, 'run')} another platform: compiled packages may behave differently"
    return nodes.row("platform", "platform", cells, "warning" if other else "ok", hint)


def _probe_rows(scheduler: Facts, workers: Mapping[str, Facts]) -> list[VersionRow]:
    failed = {a: str(f["error"]) for a, f in workers.items() if "error" in f}
    if "error" not in scheduler and not failed:
        return []
    first = scheduler.get("error") or next(iter(failed.values()))
    return [
        VersionRow(
            package="probe",
            kind="probe",
            client="ok",
            scheduler="failed" if "error" in scheduler else "ok",
            workers=group_workers({a: "failed" for a in failed}) if failed else "ok",
            severity="error",
            suggestion=f"{where('error' in scheduler, failed)} did not answer: {first}",
            by_worker={a: f"failed: {e}" for a, e in failed.items()},
        )
    ]


def _package_row(
    name: str, required: bool, nodes: _Nodes, required_by: str | None = None
) -> list[VersionRow]:
    infos = {k: f.get("packages", {}).get(name) for k, f in nodes.facts.items()}
    if not any(infos.values()):  # installed nowhere: nothing to compare, unless declared
        if required_by is None:
            return []
        hint = f"required by {required_by}, installed nowhere: pip install {name} here, then sync"
        return [nodes.row(name, "package", dict.fromkeys(infos, "missing"), "warning", hint)]
    reference = (infos[nodes.CLIENT] or {}).get("version")
    install: list[str] = []
    restart: list[str] = []
    for key, info in infos.items():
        if _running(info) != reference or _stale(info):
            installed = info["version"] if info else None
            (restart if installed == reference else install).append(key)
    running = [_running(i) for i in infos.values()]
    present = {v for v in running if v is not None}
    presence_only = not required and len(present) == 1 and not restart
    if not install and not restart:
        severity: Severity = "ok"
    else:
        severity = "warning" if presence_only else "error"
    hints: list[str] = []
    if install and reference is None:
        common = max(sorted(present), key=running.count)
        hints.append(
            f"install {name}=={common} on the client, or add {name} to [tool.shipit] ignore"
        )
    elif install:
        loaded = any((infos[k] or {}).get("imported") for k in install)
        hints.append(f"install {name}=={reference} on {nodes.where(install)}")
        hints[-1] += f", then restart {'it' if len(install) == 1 else 'them'}" if loaded else ""
    if restart:
        first = infos[restart[0]] or {}
        hints.append(
            f"restart {nodes.where(restart)}: {name} {first['version']} is installed "
            f"but {first['loaded']} is still loaded"
        )
    if presence_only:
        hints.append("Dask uses it where present")
    cells = {k: _cell(i) for k, i in infos.items()}
    return [nodes.row(name, "package", cells, severity, "; ".join(hints))]


def _optional_row(name: str, nodes: _Nodes) -> VersionRow | None:
    """A distribution the code imports where a failed import is caught: where the client and
    a node both have it, the versions should agree (a warning); absent anywhere is fine."""
    infos = {k: f.get("packages", {}).get(name) for k, f in nodes.facts.items()}
    if not any(infos.values()):
        return None
    reference = _running(infos[nodes.CLIENT])
    other = [k for k, i in infos.items() if i and reference and _running(i) != reference]
    hint = (
        f"{nodes.where(other, 'run')} another version of optional {name}; to install "
        f"{name}=={reference} there, add it to [tool.shipit] extra-packages"
    )
    cells = {k: _cell(i) for k, i in infos.items()}
    return nodes.row(name, "optional", cells, "warning" if other else "ok", hint)


def _running(info: Facts | None) -> str | None:
    """The version a process runs: the one it loaded, else the one installed."""
    if not info:
        return None
    return info.get("loaded") or info["version"]


def _stale(info: Facts | None) -> bool:
    """Upgraded, or reinstalled, on disk since the process imported it: it needs a restart."""
    if not info:
        return False
    return _running(info) != info["version"] or bool(info.get("files_changed"))


def _cell(info: Facts | None) -> str:
    if not info:
        return "missing"
    if _running(info) != info["version"]:
        return f"{info['version']} installed, {info['loaded']} loaded"
    if info.get("files_changed"):
        return f"{info['version']}, files changed since loaded"
    return str(info["version"])


def _code_rows(nodes: _Nodes) -> list[VersionRow]:
    """Each shipped unit's digest: nodes must agree; the client's local copy should too.

    A node on another Python minor is never sent the code (the python row says so): it is
    shown as such and left out of the agreement, else it would make the nodes that do run
    the code look like the odd ones out."""
    client = nodes.facts[nodes.CLIENT]
    shipped = {k: f.get("units") for k, f in nodes.facts.items() if k != nodes.CLIENT}
    other_python = {
        k: f["python"]
        for k, f in nodes.facts.items()
        if k != nodes.CLIENT and _minor(f) != _minor(client)
    }
    local = client.get("units") or {}
    rows = []
    for name in sorted({n for units in shipped.values() for n in units or ()}):
        cells = {k: (units or {}).get(name, "missing")[:12] for k, units in shipped.items()}
        cells.update((k, f"n/a: Python {v}") for k, v in other_python.items())
        cells[nodes.CLIENT] = local[name][:12] if name in local else "not in project"
        counts = [v for k, v in cells.items() if k != nodes.CLIENT and k not in other_python]
        if not counts:  # every node runs another Python: the python row is the news
            continue
        common = max(sorted(set(counts)), key=counts.count)
        odd = [
            k
            for k, v in cells.items()
            if k != nodes.CLIENT and k not in other_python and v != common
        ]
        if odd:
            hint = f"{nodes.where(odd, 'run')} other code: run `shipit sync` to ship it again"
            rows.append(nodes.row(name, "code", cells, "error", hint))
        else:
            unsynced = name in local and cells[nodes.CLIENT] != common
            hint = "local edits are not shipped yet: run `shipit sync`"
            rows.append(nodes.row(name, "code", cells, "warning" if unsynced else "ok", hint))
    return rows


def _joined_rows(nodes: _Nodes) -> list[VersionRow]:
    """Workers that joined after an install and have not installed its requirements (still
    at it, or failed): they do not run the project yet. Nothing while every one has them."""
    reports = {k: f.get("joined") for k, f in nodes.facts.items() if k != nodes.CLIENT}
    bad = {k: r for k, r in reports.items() if isinstance(r, dict) and r.get("state") != "ok"}
    if not bad:
        return []
    cells = {k: "ok" for k in reports if k != nodes.SCHEDULER}
    for k, r in bad.items():
        lacking = " ".join(r.get("lacking") or ())
        cells[k] = f"installing {lacking}" if r["state"] == "installing" else f"failed: {lacking}"
    cells[nodes.CLIENT] = cells[nodes.SCHEDULER] = "-"
    failed = [k for k, r in bad.items() if r["state"] == "failed"]
    if failed:
        why = next(str(bad[k].get("error")) for k in failed)
        hint = f"{nodes.where(failed)} could not install on joining: {why}; run `shipit sync`"
        return [nodes.row("packages", "joined", cells, "error", hint)]
    hint = f"{nodes.where(list(bad), 'install')} the project's requirements: wait, check again"
    return [nodes.row("packages", "joined", cells, "warning", hint)]


def _override(row: VersionRow, level: str) -> VersionRow:
    if row.severity == "ok" or level not in ("error", "warning"):
        return row
    return VersionRow(**{**asdict(row), "severity": level, "by_worker": row.by_worker})


def group_workers(values: Mapping[str, str], reference: str | None = None) -> str:
    """``{"tcp://a": "2.1.0", ...}`` -> ``"7 workers: 2.1.0; 2.0.0 on tcp://a"``.

    The largest group is counted and the others are named, so the odd ones stand out; of
    groups the same size, the one that matches ``reference`` (the client's) is counted.
    """
    if not values:
        return "no workers"
    groups: dict[str, list[str]] = {}
    for address, value in sorted(values.items()):
        groups.setdefault(value, []).append(address)
    head, *rest = sorted(groups, key=lambda v: (-len(groups[v]), v != reference, v))
    n = len(groups[head])
    parts = [f"{n} worker{plural(n)}: {head}"]
    parts += [f"{value} on {names(groups[value])}" for value in rest]
    return "; ".join(parts)


def where(scheduler: bool, workers: Collection[str], client: bool = False) -> str:
    """``"the scheduler and 2 workers (tcp://a, tcp://b)"``."""
    parts = ["the client"] if client else []
    parts += ["the scheduler"] if scheduler else []
    if workers:
        parts.append(f"{len(workers)} worker{plural(len(workers))} ({names(workers)})")
    return " and ".join(parts) or "no node"
