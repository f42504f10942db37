"""`shipit doctor`: the checks a home or lab cluster needs, against real clusters on loopback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from distributed import Client

import shipit
from shipit.ask import Answers
from shipit.doctor import LOW_DISK, NO_DISK, _disk, _python

from .helpers import Cluster, ProcessCluster, free_port
from .helpers import shipit as run_shipit


@pytest.mark.cluster
def test_a_healthy_cluster_passes(local_cluster: Cluster) -> None:
    result = run_shipit("doctor", "--scheduler", local_cluster.scheduler_address)

    assert result.returncode == 0, result.stdout + result.stderr
    status = {line[9:28].strip(): line[:8].strip() for line in result.stdout.splitlines()[:-1]
              if not line.startswith(" ")}  # fmt: skip
    assert status == {
        "scheduler": "ok",
        "workers": "ok",
        "python": "ok",
        "worker connections": "ok",
        "dashboard": status["dashboard"],  # ok where bokeh is installed, else a warning
        "disk": "ok",
        "memory limit": "ok",
        "nannies": "ok",
    }
    assert "2 worker-to-worker connections opened" in result.stdout
    assert result.stdout.splitlines()[-1].endswith("0 failed")


@pytest.mark.cluster
def test_a_worker_others_cannot_reach_fails_and_is_named(tmp_path: Path, bare_python: Path) -> None:
    pc = ProcessCluster(bare_python, tmp_path)
    try:
        address = pc.start_scheduler()
        empty = run_shipit("doctor", "--scheduler", address, "--timeout", "3")
        closed = free_port()  # nothing listens there: the worker advertises a dead address
        pc.start_worker()
        pc._spawn(
            "distributed.cli.dask_worker", "--scheduler-file", str(pc.scheduler_file),
            "--nthreads", "1", "--no-dashboard", "--listen-address", "tcp://127.0.0.1:0",
            "--contact-address", f"tcp://127.0.0.1:{closed}",
        )  # fmt: skip
        pc._spawn(
            "distributed.cli.dask_worker", "--scheduler-file", str(pc.scheduler_file),
            "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1", "--no-nanny",
            "--memory-limit", "0", "--name", "bare",
        )  # fmt: skip
        with shipit_client(address) as client:
            client.wait_for_workers(3, timeout=60)
            report = shipit.doctor(client, timeout=2)
            status = shipit.status(client, timeout=2)
        shown = run_shipit("doctor", "--scheduler", address, "--timeout", "2", "--json")
    finally:
        pc.close()

    assert empty.returncode == 1
    assert re.search(r"^failed +workers +no worker is connected$", empty.stdout, re.M)
    # `dask scheduler --no-dashboard` in an environment without bokeh: off, not "install bokeh"
    off = r"^ok +dashboard +off: the scheduler was started without a dashboard$"
    assert re.search(off, empty.stdout, re.M), empty.stdout

    dead = f"tcp://127.0.0.1:{closed}"
    found = {f.check: f for f in report.findings}
    assert not report.ok
    assert found["workers"].status == "failed" and dead in found["workers"].detail
    links = found["worker connections"]
    assert links.status == "failed"
    assert f"-> {dead}: ConnectionRefusedError" in links.detail
    assert links.detail.startswith("2 of 4 connections failed")  # from both live workers
    assert links.fix and "--contact-address" in links.fix
    assert found["nannies"].status == "warning" and "no nanny on" in found["nannies"].detail
    assert found["memory limit"].status == "warning"
    assert found["python"].status == "ok"

    assert [n.error for n in status.nodes if n.address == dead] == ["no answer within 2 s"]
    assert any(n.name == "bare" and n.nanny is None for n in status.nodes)

    assert shown.returncode == 1
    data = json.loads(shown.stdout)
    assert data["ok"] is False
    assert {f["check"] for f in data["findings"] if f["status"] == "failed"} == {
        "workers",
        "worker connections",
    }


def shipit_client(address: str) -> Client:
    return Client(address, timeout=30)


def node(python: str = "3.11.7", free: int | None = 10 * LOW_DISK) -> dict[str, object]:
    return {"python": python, "free_disk": free, "local_directory": "/scratch"}


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        ({"w1": node(), "w2": node(python="3.11.2")}, "ok"),  # a patch release: pickle agrees
        ({"w1": node(), "w2": node(python="3.12.1")}, "failed"),
    ],
)
def test_python_minor_versions_must_match(
    workers: dict[str, dict[str, object]], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("platform.python_version", lambda: "3.11.7")
    finding = _python(Answers(scheduler=node(), workers=workers, errors={}))
    assert finding.status == expected
    if expected == "failed":
        assert "3.12 on w2" in finding.detail and finding.fix


@pytest.mark.parametrize(
    ("free", "expected"),
    [(10 * LOW_DISK, "ok"), (LOW_DISK - 1, "warning"), (NO_DISK - 1, "failed"), (None, "ok")],
)
def test_free_disk_thresholds(free: int | None, expected: str) -> None:
    [finding] = _disk(Answers(scheduler=None, workers={"w1": node(free=free)}, errors={}))
    assert finding.status == expected
