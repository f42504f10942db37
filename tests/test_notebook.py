"""shipit in a real Jupyter kernel (issue 17): ipykernel driven through jupyter_client, with the
cluster made in the kernel as a notebook user makes it, and files edited as an editor would.

What each test asserts is what the notebook shows: a cell's printed output, its stderr, and
the status area the watch updates in place (``update_display_data`` on its display id).
"""

from __future__ import annotations

import queue
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipit.report import ParityReport, VersionRow

from .helpers import Project

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.cluster


class Kernel:
    """One real kernel; ``run`` executes a cell and returns what it printed."""

    def __init__(self, cwd: Path) -> None:
        self.manager = jupyter_client.KernelManager(kernel_name="python3")
        self.manager.start_kernel(cwd=str(cwd), extra_arguments=["--HistoryManager.enabled=False"])
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)
        self.displays: dict[str, str] = {}  # display id -> its latest text

    def run(self, code: str, timeout: float = 180) -> tuple[str, str]:
        """(stdout, stderr) of the cell; an error in it fails the test."""
        msg_id = self.client.execute(textwrap.dedent(code))
        out, err, deadline = [], [], time.monotonic() + timeout
        while True:
            msg = self._next(deadline)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                (out if content["name"] == "stdout" else err).append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out), "".join(err)

    def _next(self, deadline: float) -> dict[str, Any]:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"the kernel did not answer in time; displays: {self.displays}"
            try:
                msg: dict[str, Any] = self.client.get_iopub_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if msg["msg_type"] in ("display_data", "update_display_data"):
                display = msg["content"].get("transient", {}).get("display_id")
                if display:
                    self.displays[display] = msg["content"]["data"].get("text/plain", "")
            return msg

    def wait_display(self, text: str, timeout: float = 60) -> str:
        """Until a display area (the watch's) shows ``text``; its text."""
        deadline = time.monotonic() + timeout
        while True:
            for shown in self.displays.values():
                if text in shown:
                    return shown
            try:
                self._next(min(deadline, time.monotonic() + 0.5))
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise AssertionError(f"no display shows {text!r}: {self.displays}") from None

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def mypkg(tmp_path: Path) -> Project:
    project = Project(tmp_path / "work", "mypkg")
    project.write("pyproject.toml", '[project]\nname = "mypkg"\nversion = "0.1.0"\n')
    project.write("{pkg}/__init__.py", "")
    project.write("{pkg}/model.py", MODEL.format(factor=1))
    return project


MODEL = """
class Model:
    pass


def score(x):
    return x * {factor}
"""


@pytest.fixture
def kernel(mypkg: Project) -> Iterator[Kernel]:
    k = Kernel(mypkg.root)
    try:
        yield k
    finally:
        k.close()


CLUSTER = """
from distributed import Client, LocalCluster
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
client = Client(cluster)
"""


@pytest.mark.parametrize("autoreload", [False, True])
def test_the_magic_watch_keeps_the_kernel_and_the_cluster_on_the_same_code(
    kernel: Kernel, mypkg: Project, autoreload: bool
) -> None:
    if autoreload:  # IPython's own, loaded first: the two agree
        kernel.run("%load_ext autoreload\n%autoreload 2")
    kernel.run("%load_ext shipit\n" + CLUSTER + "from mypkg.model import score\n")
    kernel.run("%shipit watch .")
    kernel.wait_display("last   ready  ")

    mypkg.write("{pkg}/model.py", MODEL.format(factor=2))
    kernel.wait_display("last   shipped  mypkg")
    out, _ = kernel.run("print(client.submit(score, 3, pure=False).result(), score(3))")
    assert out.split() == ["6", "6"]  # the cluster and the kernel's own name, both new

    mypkg.write("{pkg}/model.py", "def score(x:\n    return x\n")
    shown = kernel.wait_display("error  not shipped")
    assert "model.py:1" in shown
    out, err = kernel.run("print(client.submit(score, 3, pure=False).result(), score(3))")
    assert out.split() == ["6", "6"]  # the last good code, on both sides
    assert "model.py:1" in err and "the kernel keeps the last good mypkg.model" in err

    mypkg.write("{pkg}/model.py", MODEL.format(factor=3))
    shown = kernel.wait_display("last   shipped  mypkg", timeout=60)
    out, _ = kernel.run("print(client.submit(score, 3, pure=False).result(), score(3))")
    assert out.split() == ["9", "9"]

    kernel.run("%shipit stop")
    kernel.wait_display("stopped: later saves are not shipped")
    mypkg.write("{pkg}/model.py", MODEL.format(factor=4))
    _, err = kernel.run("pass")
    assert "saved since the watch stopped, not shipped: model.py" in err
    out, _ = kernel.run("print(client.submit(score, 3, pure=False).result(), score(3))")
    assert out.split() == ["9", "9"]


def test_check_and_guard_see_a_kernel_older_than_the_cluster(
    kernel: Kernel, mypkg: Project
) -> None:
    kernel.run(CLUSTER + "import shipit\nfrom mypkg.model import score\nshipit.sync(client)\n")
    mypkg.write("{pkg}/model.py", MODEL.format(factor=2))
    out, _ = kernel.run(
        """
        shipit.sync(client)
        report = shipit.check(client, strict=False)
        print(report.ok)
        print(report.text())
        guard = shipit.guard(client)
        try:
            client.submit(score, 3, pure=False).result()
        except shipit.VersionMismatch as e:
            print("refused:", str(e).splitlines()[0])
        """
    )
    assert out.splitlines()[0] == "False"
    (row,) = [line for line in out.splitlines() if line.startswith("mypkg (loaded)")]
    assert "the client process runs an older `mypkg.model` than the cluster" in row
    assert "refused:" in out


def test_a_cli_watch_aimed_at_a_kernels_own_cluster_leaves_its_modules_alone(
    kernel: Kernel, mypkg: Project
) -> None:
    out, _ = kernel.run(
        """
        import sys
        from distributed import Client, LocalCluster
        cluster = LocalCluster(
            n_workers=1, processes=False, protocol="tcp", dashboard_address=None
        )
        client = Client(cluster)
        import mypkg.model
        before, model = sys.modules["mypkg.model"], mypkg.model.Model()
        print(cluster.scheduler_address)
        """
    )
    address = out.split()[-1]
    watch = subprocess.Popen(
        [sys.executable, "-m", "shipit", "watch", "--scheduler", address, str(mypkg.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert watch.stdout is not None
        lines = []
        while not any(line.startswith("watching") for line in lines):
            line = watch.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        mypkg.write("{pkg}/model.py", MODEL.format(factor=2))
        while not any(line.startswith("shipped") for line in lines):
            line = watch.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        out, _ = kernel.run(
            """
            import pickle
            print(sys.modules["mypkg.model"] is before, isinstance(model, mypkg.model.Model))
            print(type(pickle.loads(pickle.dumps(model))).__name__)
            """
        )
        assert out.split() == ["True", "True", "Model"]
        status = subprocess.run(
            [sys.executable, "-m", "shipit", "status", "--scheduler", address, str(mypkg.root)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        rows = [line for line in status.stdout.splitlines() if line.startswith("tcp://")]
        assert len(rows) == 2 and all("(in-process: keeps its modules)" in r for r in rows), rows
    finally:
        watch.terminate()
        watch.wait(timeout=60)


def test_reports_show_in_a_notebook_as_the_tables_the_commands_print() -> None:
    from IPython.lib.pretty import pretty

    row = VersionRow("numpy", "package", "2.1.0", "2.1.0", "1 worker: 2.0.0", "error", "pin <it>")
    report = ParityReport(rows=(row,), workers=("tcp://w",))
    assert pretty(report) == report.text()
    assert report.table().splitlines()[1].startswith("numpy ")
    assert report.text().endswith("1 error, 0 warnings")
    assert (
        report._repr_html_()
        == f"<pre>{report.text().replace('<', '&lt;').replace('>', '&gt;')}</pre>"
    )


def test_the_api_watch_in_a_kernel_shows_its_status_area_and_says_when_it_stopped(
    kernel: Kernel, mypkg: Project
) -> None:
    kernel.run(CLUSTER + "import shipit\nh = shipit.watch(client, '.')\n")
    kernel.wait_display("last   ready  ")
    mypkg.write("{pkg}/model.py", "def score(x:\n")
    assert "model.py:1" in kernel.wait_display("error  not shipped")
    out, _ = kernel.run("h.stop()\nprint(repr(h))")
    assert f"<shipit.Watch {mypkg.root}: stopped>" in out
    kernel.wait_display("stopped: later saves are not shipped")
