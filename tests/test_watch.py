"""shipit watch: real file events against real clusters."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import shipit
from shipit.watch import WatchEvent

from .helpers import Cluster, ProcessCluster, Project

pytestmark = pytest.mark.cluster  # every test here starts a cluster or a shipit process


class Events:
    """Collects watch events; ``wait_for`` blocks until one of a kind arrives."""

    def __init__(self) -> None:
        self.seen: list[WatchEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: WatchEvent) -> None:
        with self._cond:
            self.seen.append(event)
            self._cond.notify_all()

    def mark(self) -> int:
        return len(self.seen)

    def wait_for(self, kind: str, since: int, timeout: float = 30) -> WatchEvent:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.seen[since:]:
                    if event.kind == kind:
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind!r} event; saw {[str(e) for e in self.seen]}")
                self._cond.wait(left)

    def kinds(self, since: int) -> list[str]:
        return [e.kind for e in self.seen[since:]]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def watching(local_cluster: Cluster, project: Project, events: Events) -> Iterator[shipit.Watch]:
    handle = shipit.watch(local_cluster.client, project.root, on_event=events)
    try:
        yield handle
    finally:
        handle.stop()


def _set_value(project: Project, value: object) -> None:
    project.write("{pkg}/sub.py", f"VALUE = {value!r}\n\ndef value():\n    return VALUE\n")


def test_a_saved_file_reaches_every_worker(
    local_cluster: Cluster, project: Project, events: Events, watching: shipit.Watch
) -> None:
    value = project.module("{pkg}.sub").value
    assert local_cluster.on_every_worker(value) == [1] * 8
    mark = events.mark()
    _set_value(project, 2)
    shipped = events.wait_for("shipped", mark)
    assert shipped.report is not None and shipped.report.confirmed == 3
    assert shipped.latency_ms is not None and shipped.latency_ms > 0
    assert local_cluster.on_every_worker(value) == [2] * 8


def test_syntax_error_is_reported_and_the_next_good_save_ships(
    local_cluster: Cluster, project: Project, events: Events, watching: shipit.Watch
) -> None:
    value = project.module("{pkg}.sub").value
    mark = events.mark()
    project.write("{pkg}/sub.py", "VALUE = (3\n")
    error = events.wait_for("syntax-error", mark)
    assert "sub.py:1" in str(error) and "never closed" in str(error)
    assert local_cluster.on_every_worker(value) == [1] * 8  # last good code
    assert "shipped" not in events.kinds(mark)

    mark = events.mark()
    _set_value(project, 4)
    events.wait_for("shipped", mark)
    assert local_cluster.on_every_worker(value) == [4] * 8


def test_a_save_without_a_change_ships_nothing(
    local_cluster: Cluster, project: Project, events: Events, watching: shipit.Watch
) -> None:
    path = project.root / project.name / "sub.py"
    value = project.module("{pkg}.sub").value
    mark = events.mark()
    path.write_text(path.read_text())  # the editor saves the same bytes
    os.utime(path)
    _set_value(project, 1)  # and again, identical
    # A barrier, not a sleep: the watch handles saves in order, so once a real change ships,
    # the identical saves before it were handled, and shipped nothing.
    _set_value(project, 5)
    shipped = events.wait_for("shipped", mark)
    assert events.kinds(mark) == ["shipped"]
    assert shipped.report is not None and [u.name for u in shipped.report.shipped] == [project.name]
    assert local_cluster.on_every_worker(value) == [5] * 8


def test_new_and_deleted_files_and_packages(
    local_cluster: Cluster, project: Project, events: Events, watching: shipit.Watch
) -> None:
    client = local_cluster.client
    mark = events.mark()
    project.write("{pkg}/extra.py", "X = 'new'\n")
    project.write("newpkg_w/__init__.py", "Y = 'brand new'\n")
    events.wait_for("shipped", mark)
    deadline = time.monotonic() + 10  # the two files may arrive in two bursts
    while time.monotonic() < deadline:
        results = client.run(importlib.import_module, "newpkg_w", on_error="return")
        if not any(isinstance(r, Exception) for r in results.values()):
            break
        time.sleep(0.1)
    probe = project.module("{pkg}.probe")
    assert set(local_cluster.on_every_worker(probe.read, f"{project.name}.extra", "X")) == {"new"}
    assert set(local_cluster.on_every_worker(probe.read, "newpkg_w", "Y")) == {"brand new"}

    mark = events.mark()
    project.remove("{pkg}/extra.py")
    events.wait_for("shipped", mark)
    results = client.run(importlib.import_module, f"{project.name}.extra", on_error="return")
    assert all(isinstance(r, ModuleNotFoundError) for r in results.values())


def test_watch_survives_a_scheduler_restart(
    tmp_path: Path, bare_python: Path, project: Project, events: Events
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nodes = tmp_path / "nodes"
    nodes.mkdir()
    pc = ProcessCluster(bare_python, nodes)
    handle = None
    try:
        address = pc.start_scheduler(port=port)
        pc.start_worker()
        with shipit.connection.open_client(address, 30) as client:
            client.wait_for_workers(1, timeout=60)
        handle = shipit.watch(address, project.root, on_event=events)
        mark = events.mark()
        pc.stop_all()  # the scheduler and its worker go away
        events.wait_for("disconnected", mark, timeout=30)
        _set_value(project, 7)  # saved while the cluster is down
        time.sleep(3)  # down long enough for watch to back off between attempts

        pc.start_scheduler(port=port)  # and come back: the clock starts once it listens
        back = time.monotonic()
        mark = events.mark()
        ready = events.wait_for("ready", mark, timeout=30)
        assert time.monotonic() - back < 10, [str(e) for e in events.seen]
        assert ready.report is not None and ready.report.ok
        assert "reconnected" in events.kinds(mark)
        pc.start_worker()  # a worker that joins afterwards gets the current code
        with shipit.connection.open_client(address, 30) as client:
            client.wait_for_workers(1, timeout=60)
            value = project.module("{pkg}.sub").value
            assert client.submit(value, pure=False).result() == 7
    finally:
        if handle is not None:
            handle.stop()
        pc.close()


def _wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"{text!r} not printed; got {lines}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_watch_and_its_local_cluster(project: Project, signum: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipit", "watch", "--workers", "2", str(project.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = _wait_for_line(proc, "watching")
        assert any("started a local cluster at tcp://127.0.0.1:" in line for line in lines)
        assert any(line.startswith("ready") and "3/3 nodes" in line for line in lines)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2  # the workers (and their nannies)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "Traceback" not in out
        _, alive = psutil.wait_procs(children, timeout=20)
        assert alive == []
    finally:
        proc.kill()


def test_a_bad_pyproject_is_reported_and_watch_goes_on(
    local_cluster: Cluster, project: Project, events: Events, watching: shipit.Watch
) -> None:
    value = project.module("{pkg}.sub").value
    mark = events.mark()
    (project.root / "pyproject.toml").write_text("[tool.shipit]\nexclude = 'not a list'\n")
    error = events.wait_for("error", mark)
    assert "[tool.shipit] exclude must be a list of strings" in str(error)

    (project.root / "pyproject.toml").write_text("[tool.shipit]\nexclude = []\n")
    mark = events.mark()
    _set_value(project, 5)
    events.wait_for("shipped", mark)
    assert local_cluster.on_every_worker(value) == [5] * 8


def test_a_unit_grown_over_the_size_limit_is_refused_and_watch_goes_on(
    local_cluster: Cluster, project: Project, events: Events, watching: shipit.Watch
) -> None:
    value = project.module("{pkg}.sub").value
    (project.root / "pyproject.toml").write_text("[tool.shipit]\nmax-unit-size = '8 KiB'\n")
    mark = events.mark()
    big = project.root / project.name / "blob.bin"
    big.write_bytes(b"\0" * 10_000)
    _set_value(project, 6)
    error = events.wait_for("error", mark)
    assert "too large to ship, nothing was sent" in str(error) and "blob.bin" in str(error)
    assert local_cluster.on_every_worker(value) == [1] * 8

    mark = events.mark()
    big.unlink()
    events.wait_for("shipped", mark)
    assert local_cluster.on_every_worker(value) == [6] * 8


def test_watch_of_code_the_cluster_holds_says_where_it_is_current(
    local_cluster: Cluster, project: Project, events: Events
) -> None:
    shipit.sync(local_cluster.client, project.root, install=False)
    with shipit.watch(local_cluster.client, project.root, on_event=events):
        ready = events.wait_for("ready", 0)
    units = ", ".join(u.name for u in ready.report.units) if ready.report else ""
    assert str(ready) == f"ready  {units}  current on 3/3 nodes"
    assert project.name in units


def _watch_process(*args: str, **popen: object) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "shipit", "watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        **popen,
    )


def _wait_for_unread_bytes(address: str, pid: int, timeout: float = 60) -> None:
    """Until a connection from process ``pid`` to the scheduler at ``address`` holds bytes
    the scheduler has not read (a stopped scheduler reads nothing): Linux's /proc/net/tcp."""
    port = int(address.rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        theirs = {c.laddr.port for c in psutil.Process(pid).net_connections("tcp")}
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, remote, state, queues = line.split()[1:5]
            unread = int(queues.split(":")[1], 16)
            mine = (int(local.split(":")[1], 16), state) == (port, "01")
            if mine and unread and int(remote.split(":")[1], 16) in theirs:
                return
        time.sleep(0.05)
    raise AssertionError("the watch sent nothing to the scheduler")


def _seconds_to_stop(proc: subprocess.Popen[str], signum: int) -> tuple[float, str]:
    started = time.monotonic()
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    return time.monotonic() - started, out


# "Within a second" (STOP_GRACE is 0.8 s), with room for a loaded machine: what this bound
# catches is waiting out Dask's own timeouts (10 s to connect, 10 s to reconnect).
STOPS_WITHIN = 4.0


@pytest.mark.parametrize("state", ["reconnecting", "shipping"])
def test_watch_stops_at_once_whatever_the_scheduler_does_and_prints_only_its_own_lines(
    tmp_path: Path, bare_python: Path, project: Project, state: str
) -> None:
    pc = ProcessCluster(bare_python, tmp_path)
    try:
        address = pc.start_scheduler()
        pc.start_worker()
        proc = _watch_process("--scheduler", address, "--timeout", "60", str(project.root))
        try:
            _wait_for_line(proc, "watching")
            if state == "reconnecting":
                pc.stop_all()  # Dask's client tries again for --timeout s, then logs an ERROR
                _wait_for_line(proc, "disconnected", timeout=20)  # said at once, not after 60 s
            else:  # a scheduler that takes the connection and never answers
                pc.procs[0].send_signal(signal.SIGSTOP)
                _set_value(project, "new")
                _wait_for_unread_bytes(address, proc.pid)  # the push waits on the scheduler
            took, out = _seconds_to_stop(proc, signal.SIGTERM)
        finally:
            proc.kill()
    finally:
        pc.close()
    assert proc.returncode == 0, out
    assert took < STOPS_WITHIN, f"{took:.1f} s to stop; {out}"
    assert "Traceback" not in out
    assert not [line for line in out.splitlines() if line.startswith("distributed.")], out


def test_watch_stops_while_connecting_to_a_scheduler_that_never_answers(
    project: Project,
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        proc = _watch_process("--scheduler", address, "--timeout", "60", str(project.root))
        try:
            silent.settimeout(60)
            for _ in range(2):  # the port check, then Dask's connection that waits for answers
                silent.accept()[0].detach()
            assert proc.poll() is None
            took, out = _seconds_to_stop(proc, signal.SIGINT)
        finally:
            proc.kill()
    assert proc.returncode == 0, out
    assert took < STOPS_WITHIN, f"{took:.1f} s to stop; {out}"
    assert "Traceback" not in out


def test_watch_started_with_sigint_ignored_still_stops_on_sigint(project: Project) -> None:
    """A background job of a shell script starts with SIGINT ignored: Ctrl-C still stops."""
    proc = _watch_process(
        "--workers", "1", str(project.root),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    try:
        _wait_for_line(proc, "watching")
        children = psutil.Process(proc.pid).children(recursive=True)
        took, out = _seconds_to_stop(proc, signal.SIGINT)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert took < STOPS_WITHIN, f"{took:.1f} s to stop; {out}"
    _, alive = psutil.wait_procs(children, timeout=20)
    assert alive == []  # the local cluster went with it
