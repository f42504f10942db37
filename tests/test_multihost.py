"""Across a real network stack: scheduler, workers and client each in a network namespace.

The test builds its own small network: one namespace per host, each with a veth link to a
bridge in a "switch" namespace, addresses in 10.213.7.0/24. Nothing touches the machine's
own namespace, so no traffic leaves the namespaces the test made. Creating them needs root
(CAP_NET_ADMIN) and the ``ip`` tool; without them the test is skipped, saying which.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from .helpers import Project

# Every test here starts a cluster or a shipit process.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

SUBNET = "10.213.7"
SCHEDULER = f"{SUBNET}.1"
WORKERS = (f"{SUBNET}.2", f"{SUBNET}.3")
LATE_WORKER = f"{SUBNET}.4"  # joins after the edit
CLIENT = f"{SUBNET}.10"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Network:
    """Namespaces named after this process, so parallel runs never share one."""

    prefix: str
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def add_switch(self) -> str:
        switch = self._namespace("sw")
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        return switch

    def add_host(self, role: str, address: str, switch: str) -> str:
        ns = self._namespace(role)
        port = f"p{len(self.namespaces)}"  # the host's end on the switch
        _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", switch)
        _ip("-n", switch, "link", "set", port, "master", "br0")
        _ip("-n", switch, "link", "set", port, "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        return ns

    def _namespace(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def spawn(self, ns: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *argv], stdout=out, stderr=out, env=_node_env()
            )
        self.procs.append(proc)
        return proc

    def run(self, ns: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            env=_node_env(),
            check=False,
        )

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _node_env() -> dict[str, str]:
    drop = ("PYTHONPATH", "DASK_SCHEDULER_ADDRESS")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _remove_stale_namespaces() -> None:
    """Namespaces a killed test run left behind (its process is gone): delete them."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.fullmatch(r"shipit(\d+)-\w+", name)
        if match and not psutil.pid_exists(int(match.group(1))):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture
def network() -> Iterator[Network]:
    if shutil.which("ip") is None:
        pytest.skip("multi-host test needs the `ip` tool (iproute2) to create network namespaces")
    if os.geteuid() != 0:
        pytest.skip("multi-host test needs root (CAP_NET_ADMIN) to create network namespaces")
    _remove_stale_namespaces()
    net = Network(f"shipit{os.getpid()}")
    try:
        try:
            net.add_switch()
        except RuntimeError as e:
            pytest.skip(f"cannot create network namespaces and a bridge here: {e}")
        yield net
    finally:
        net.close()


# Run on the client's host: connect, then ask each worker (by address) for the value.
_CHECK = textwrap.dedent("""
    import json, sys
    from distributed import Client
    sys.path.insert(0, ".")
    with Client(sys.argv[1], timeout=30) as client:
        client.wait_for_workers(int(sys.argv[2]), timeout=60)
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        if sys.argv[3:]:
            from {pkg}.sub import value
            futures = [client.submit(value, pure=False, workers=[w], allow_other_workers=False)
                       for w in workers for _ in range(2)]
            where = [w for w in workers for _ in range(2)]
            print(json.dumps(sorted(zip(where, client.gather(futures)))))
        else:
            print(json.dumps(workers))
""")


def test_sync_and_edit_reach_workers_on_other_hosts(
    network: Network, project: Project, bare_python: Path, tmp_path: Path
) -> None:
    switch = network.namespaces[0]
    sched_ns = network.add_host("s", SCHEDULER, switch)
    worker_ns = [network.add_host(f"w{i}", a, switch) for i, a in enumerate(WORKERS)]
    client_ns = network.add_host("c", CLIENT, switch)
    address = f"tcp://{SCHEDULER}:8786"
    node = [str(bare_python), "-m"]  # nodes: Dask, no shipit
    network.spawn(
        sched_ns,
        [*node, "distributed.cli.dask_scheduler", "--host", SCHEDULER, "--port", "8786",
         "--no-dashboard"],
        tmp_path / "scheduler.log",
    )  # fmt: skip

    def start_worker(ns: str, host: str) -> None:
        network.spawn(
            ns,
            [*node, "distributed.cli.dask_worker", address, "--host", host, "--nthreads", "1",
             "--no-nanny", "--no-dashboard"],
            tmp_path / f"worker-{host}.log",
        )  # fmt: skip

    for ns, host in zip(worker_ns, WORKERS, strict=True):
        start_worker(ns, host)
    check = tmp_path / "check_nodes.py"  # outside the project: not shipped
    check.write_text(_CHECK.format(pkg=project.name))

    def on_workers(n: int, *with_values: str) -> Any:
        argv = [sys.executable, str(check), address, str(n), *with_values]
        done = network.run(client_ns, argv, project.root)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    def sync() -> str:
        argv = [sys.executable, "-m", "shipit", "sync", "--scheduler", address, "--no-install"]
        done = network.run(client_ns, argv, project.root)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    deadline = time.monotonic() + 60
    while True:  # the scheduler may still be starting in its namespace
        argv = [sys.executable, str(check), address, str(len(WORKERS))]
        done = network.run(client_ns, argv, project.root)
        if done.returncode == 0:
            break
        assert time.monotonic() < deadline, done.stderr
    workers = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(w.rsplit(":", 1)[0] for w in workers) == [f"tcp://{h}" for h in WORKERS]

    assert "3/3 nodes" in sync()
    assert on_workers(2, "values") == [[w, 1] for w in workers for _ in range(2)]
    project.write("{pkg}/sub.py", "VALUE = 2\n\ndef value():\n    return VALUE\n")
    assert "3/3 nodes" in sync()
    assert on_workers(2, "values") == [[w, 2] for w in workers for _ in range(2)]

    # A machine that joins afterwards takes the current code from the scheduler.
    start_worker(network.add_host("w9", LATE_WORKER, switch), LATE_WORKER)
    values = on_workers(3, "values")
    assert [v for _, v in values] == [2] * 6
    assert {w.rsplit(":", 1)[0] for w, _ in values} == {
        f"tcp://{h}" for h in (*WORKERS, LATE_WORKER)
    }
