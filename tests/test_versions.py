"""shipit.parity.versions: every comparison rule, with plain dicts and no cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shipit.errors import VersionMismatch
from shipit.parity.versions import compare, group_workers
from shipit.report import ParityReport

W1, W2, W3 = "tcp://10.0.0.1:4001", "tcp://10.0.0.2:4002", "tcp://10.0.0.3:4003"


def pkg(version: str, loaded: str | None = None, imported: bool = True, **extra: Any) -> dict:
    return {"version": version, "imported": imported, "loaded": loaded or version, **extra}


def node(python: str = "3.11.7", units: dict | None = None, **packages: Any) -> dict[str, Any]:
    return {
        "python": python,
        "implementation": packages.pop("implementation", "cpython"),
        "platform": packages.pop("platform", "linux"),
        "machine": packages.pop("machine", "x86_64"),
        "packages": packages,
        "units": units,
    }


def row(rows: tuple, package: str) -> Any:
    (found,) = [r for r in rows if r.package == package]
    return found


GOOD = pkg("2.0.0")

# (case, client, scheduler, workers, package, severity, client cell, workers cell, suggestion)
PACKAGE_CASES = [
    (
        "all equal",
        node(tiny=GOOD), node(tiny=GOOD), {W1: node(tiny=GOOD), W2: node(tiny=GOOD)},
        "ok", "2.0.0", "2 workers: 2.0.0", "",
    ),
    (
        "one worker behind",
        node(tiny=GOOD), node(tiny=GOOD),
        {W1: node(tiny=GOOD), W2: node(tiny=GOOD), W3: node(tiny=pkg("1.0.0"))},
        "error", "2.0.0", f"2 workers: 2.0.0; 1.0.0 on {W3}",
        f"install tiny==2.0.0 on 1 worker ({W3}), then restart it",
    ),
    (
        "a tie names the worker that differs from the client",
        node(tiny=GOOD), node(tiny=GOOD), {W1: node(tiny=pkg("1.0.0")), W2: node(tiny=GOOD)},
        "error", "2.0.0", f"1 worker: 2.0.0; 1.0.0 on {W1}",
        f"install tiny==2.0.0 on 1 worker ({W1}), then restart it",
    ),
    (
        "missing on the scheduler, never imported on a worker",
        node(tiny=GOOD), node(), {W1: node(tiny=pkg("1.0.0", imported=False))},
        "error", "2.0.0", "1 worker: 1.0.0",
        f"install tiny==2.0.0 on the scheduler and 1 worker ({W1})",
    ),
    (
        "missing on the client",
        node(), node(tiny=GOOD), {W1: node(tiny=GOOD)},
        "error", "missing", "1 worker: 2.0.0",
        "install tiny==2.0.0 on the client, or add tiny to [tool.shipit] ignore",
    ),
    (
        "upgraded under a running worker",
        node(tiny=GOOD), node(tiny=GOOD), {W1: node(tiny=pkg("2.0.0", loaded="1.0.0"))},
        "error", "2.0.0", "1 worker: 2.0.0 installed, 1.0.0 loaded",
        f"restart 1 worker ({W1}): tiny 2.0.0 is installed but 1.0.0 is still loaded",
    ),
    (
        "upgraded under the client",
        node(tiny=pkg("2.0.0", loaded="1.0.0")), node(tiny=GOOD), {W1: node(tiny=GOOD)},
        "error", "2.0.0 installed, 1.0.0 loaded", "1 worker: 2.0.0",
        "restart the client: tiny 2.0.0 is installed but 1.0.0 is still loaded",
    ),
    (
        "same version reinstalled with other files",
        node(tiny=GOOD), node(tiny=GOOD), {W1: node(tiny=pkg("2.0.0", files_changed=True))},
        "error", "2.0.0", "1 worker: 2.0.0, files changed since loaded",
        f"restart 1 worker ({W1}): tiny 2.0.0 is installed but 2.0.0 is still loaded",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    "client, scheduler, workers, severity, client_cell, workers_cell, suggestion",
    [case[1:] for case in PACKAGE_CASES],
    ids=[case[0] for case in PACKAGE_CASES],
)
def test_package_rows(
    client: dict, scheduler: dict, workers: dict, severity: str, client_cell: str,
    workers_cell: str, suggestion: str,
) -> None:  # fmt: skip
    found = row(compare(client, scheduler, workers, {"tiny": True}), "tiny")
    assert (found.severity, found.client, found.workers) == (severity, client_cell, workers_cell)
    assert found.suggestion == suggestion


OPTIONAL_CASES = [
    ("absent on one worker", {W1: node(numpy=GOOD), W2: node()}, "warning"),
    ("another version on one worker", {W1: node(numpy=GOOD), W2: node(numpy=pkg("1.0"))}, "error"),
    ("present everywhere", {W1: node(numpy=GOOD)}, "ok"),
]


@pytest.mark.parametrize(
    "workers, severity", [c[1:] for c in OPTIONAL_CASES], ids=[c[0] for c in OPTIONAL_CASES]
)
def test_optional_dask_packages_may_be_absent(workers: dict, severity: str) -> None:
    rows = compare(node(numpy=GOOD), node(numpy=GOOD), workers, {"numpy": False})
    assert row(rows, "numpy").severity == severity


def test_a_package_installed_nowhere_has_no_row() -> None:
    rows = compare(node(), node(), {W1: node()}, {"tiny": True, "numpy": False})
    assert [r.package for r in rows] == ["python", "platform"]


OLD_PYTHON = f"use Python 3.11 on 1 worker ({W1}): pickled tasks need the client's major.minor"
PYTHON_CASES = [
    ("same", node(), "ok", ""),
    (
        "patch",
        node("3.11.9"),
        "warning",
        f"Python patch versions differ on 1 worker ({W1}); usually harmless",
    ),
    ("minor", node("3.12.1"), "error", OLD_PYTHON),
    ("implementation", node(implementation="pypy"), "error", OLD_PYTHON),
]


@pytest.mark.parametrize(
    "worker, severity, suggestion", [c[1:] for c in PYTHON_CASES], ids=[c[0] for c in PYTHON_CASES]
)
def test_python_row(worker: dict, severity: str, suggestion: str) -> None:
    found = row(compare(node(), node(), {W1: worker}, {}), "python")
    assert (found.severity, found.suggestion) == (severity, suggestion)


def test_another_platform_is_a_warning() -> None:
    found = row(compare(node(), node(), {W1: node(machine="aarch64")}, {}), "platform")
    assert (found.severity, found.workers) == ("warning", "1 worker: linux-aarch64")


OLD_CODE = f"1 worker ({W2}) runs other code: run `shipit sync` to ship it again"
CODE_CASES = [
    ("in step", {"proj": "a" * 64}, {"proj": "a" * 64}, "ok", ""),
    ("a worker on old code", {"proj": "a" * 64}, {"proj": "b" * 64}, "error", OLD_CODE),
    ("a worker without the unit", {"proj": "a" * 64}, {}, "error", OLD_CODE),
]


@pytest.mark.parametrize(
    "w1, w2, severity, suggestion", [c[1:] for c in CODE_CASES], ids=[c[0] for c in CODE_CASES]
)
def test_shipped_code_must_agree_on_every_node(
    w1: dict, w2: dict, severity: str, suggestion: str
) -> None:
    units = {"proj": "a" * 64}
    rows = compare(
        node(units=units), node(units=units), {W1: node(units=w1), W2: node(units=w2)}, {}
    )
    found = row(rows, "proj")
    assert (found.kind, found.label, found.severity, found.suggestion) == (
        "code",
        "proj (code)",
        severity,
        suggestion,
    )


@pytest.mark.parametrize(
    "scheduler, workers, where",
    [
        ("b", "aa", "the scheduler runs"),
        ("b", "aab", f"the scheduler and 1 worker ({W3}) run"),
        ("a", "abb", f"2 workers ({W2}, {W3}) run"),
    ],
)
def test_the_verb_agrees_with_the_nodes_that_run_other_code(
    scheduler: str, workers: str, where: str
) -> None:
    units = {"proj": "a" * 64}
    theirs = {w: node(units={"proj": c * 64}) for w, c in zip((W1, W2, W3), workers, strict=False)}
    rows = compare(node(units=units), node(units={"proj": scheduler * 64}), theirs, {})
    assert row(rows, "proj").suggestion == f"{where} other code: run `shipit sync` to ship it again"


def test_local_edits_not_shipped_are_a_warning() -> None:
    shipped = {"proj": "a" * 64}
    rows = compare(
        node(units={"proj": "c" * 64}), node(units=shipped), {W1: node(units=shipped)}, {}
    )
    found = row(rows, "proj")
    assert (found.client, found.workers, found.severity) == (
        "c" * 12,
        "1 worker: " + "a" * 12,
        "warning",
    )
    assert found.suggestion == "local edits are not shipped yet: run `shipit sync`"


def test_no_code_rows_without_a_shipit_agent() -> None:
    assert [r.kind for r in compare(node(units={"proj": "a"}), node(), {W1: node()}, {})] == [
        "python",
        "platform",
    ]


def test_a_worker_that_fails_the_probe_is_an_error_and_left_out_of_the_rest() -> None:
    rows = compare(
        node(tiny=GOOD),
        node(tiny=GOOD),
        {W1: node(tiny=GOOD), W2: {"error": "OSError: gone"}},
        {"tiny": True},
    )
    probe = row(rows, "probe")
    assert (probe.severity, probe.workers) == ("error", "1 worker: failed")
    assert probe.suggestion == f"1 worker ({W2}) did not answer: OSError: gone"
    assert row(rows, "tiny").workers == "1 worker: 2.0.0"


def test_severity_from_the_config_relaxes_a_difference() -> None:
    workers = {W1: node(tiny=pkg("1.0.0")), W2: node("3.11.1")}
    rows = compare(
        node(tiny=GOOD),
        node(tiny=GOOD),
        workers,
        {"tiny": True},
        severity={"tiny": "warning", "python": "error"},
    )
    assert (row(rows, "tiny").severity, row(rows, "python").severity) == ("warning", "error")
    assert ParityReport(rows).ok is False
    rows = compare(
        node(tiny=GOOD),
        node(tiny=GOOD),
        {W1: node(tiny=pkg("1.0.0"))},
        {"tiny": True},
        severity={"tiny": "warning"},
    )
    assert ParityReport(rows).ok is True


def spread(**groups: tuple[str, int]) -> dict[str, str]:
    """spread(w=("2.1.0", 3)) -> {"tcp://w0": "2.1.0", "tcp://w1": "2.1.0", "tcp://w2": "2.1.0"}"""
    return {f"tcp://{k}{i}": v for k, (v, n) in groups.items() for i in range(n)}


GROUP_CASES = [
    ({}, "no workers"),
    (spread(w=("2.1.0", 7)), "7 workers: 2.1.0"),
    (spread(w=("2.1.0", 7), x=("2.0.0", 1)), "7 workers: 2.1.0; 2.0.0 on tcp://x0"),
    (
        spread(w=("2.1.0", 3), x=("missing", 5)),
        "5 workers: missing; 2.1.0 on tcp://w0, tcp://w1, tcp://w2",
    ),
    (
        spread(a=("1", 1), x=("2", 5), y=("3", 6)),
        "6 workers: 3; 2 on tcp://x0, tcp://x1, tcp://x2 +2 more; 1 on tcp://a0",
    ),
]


@pytest.mark.parametrize("values, text", GROUP_CASES)
def test_group_workers(values: dict, text: str) -> None:
    assert group_workers(values) == text


def test_the_mismatch_message_is_the_table() -> None:
    rows = compare(
        node(tiny=GOOD),
        node(tiny=GOOD),
        {W1: node(tiny=GOOD), W2: node(tiny=pkg("1.0.0"))},
        {"tiny": True},
    )
    report = ParityReport(rows, scheduler="tcp://s:8786", workers=(W1, W2))
    lines = str(VersionMismatch(report)).splitlines()
    assert (
        lines[0]
        == "compared 3 rows across the client, the scheduler and 2 workers: 1 error, 0 warnings"
    )
    assert lines[1].split() == [
        "package",
        "client",
        "scheduler",
        "workers",
        "severity",
        "suggestion",
    ]
    assert lines[2].split()[:7] == ["tiny", "2.0.0", "2.0.0", "1", "worker:", "2.0.0;", "1.0.0"]
    assert len(lines) == 3  # only the rows that differ
    assert len(report.table(everything=True).splitlines()) == 4
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["rows"][2]["by_worker"] == {W1: "2.0.0", W2: "1.0.0"}


@pytest.mark.parametrize(
    "workers, severity, cells",
    [
        ({W1: node(opt=pkg("4.0.0")), W2: node()}, "ok", f"1 worker: 4.0.0; missing on {W2}"),
        ({W1: node(opt=pkg("3.0.0"))}, "warning", "1 worker: 3.0.0"),
    ],
    ids=["absent on a worker: fine", "another version: a warning"],
)
def test_an_optional_distribution_is_compared_where_present(
    workers: dict, severity: str, cells: str
) -> None:
    rows = compare(node(opt=pkg("4.0.0")), node(), workers, {}, optional=["opt"])
    found = row(rows, "opt")
    assert (found.kind, found.label, found.severity, found.workers) == (
        "optional", "opt (optional)", severity, cells,
    )  # fmt: skip
    if severity == "warning":
        assert found.suggestion == (
            f"1 worker ({W1}) runs another version of optional opt; to install opt==4.0.0 "
            "there, add it to [tool.shipit] extra-packages"
        )
    strict = compare(node(opt=pkg("4.0.0")), node(), workers, {}, optional=["opt"],
                     severity={"opt": "error"})  # fmt: skip
    assert row(strict, "opt").severity == ("error" if severity == "warning" else "ok")


def test_an_optional_distribution_installed_nowhere_has_no_row() -> None:
    assert [r.package for r in compare(node(), node(), {W1: node()}, {}, optional=["opt"])] == [
        "python",
        "platform",
    ]
