"""TLS through Dask's own settings, and a warning before code travels in the clear."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, Security

from shipit.connection import in_the_clear, warn_if_in_the_clear

from .helpers import Cluster, ProcessCluster, Project, cli


@pytest.mark.parametrize(
    ("address", "warns"),
    [
        ("tcp://10.0.0.5:8786", True),
        ("tcp://192.168.1.20:8786", True),
        ("tcp://[fe80::1]:8786", True),
        ("tcp://scheduler.example.org:8786", True),
        ("ws://10.0.0.5:8786", True),
        ("tls://10.0.0.5:8786", False),
        ("wss://10.0.0.5:8786", False),
        ("tcp://127.0.0.1:8786", False),
        ("tcp://127.8.0.1:8786", False),
        ("tcp://[::1]:8786", False),
        ("tcp://localhost:8786", False),
        ("inproc://10.0.0.5/1/2", False),
    ],
)
def test_in_the_clear(address: str, warns: bool) -> None:
    assert in_the_clear(address) is warns


def test_the_warning_names_the_address_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shipit.connection"):
        warn_if_in_the_clear("tcp://10.9.8.7:8786")
        warn_if_in_the_clear("tcp://10.9.8.7:8786")
        warn_if_in_the_clear("tls://10.9.8.7:8786")
    assert len(caplog.records) == 1
    assert "plain tcp:// to tcp://10.9.8.7:8786" in caplog.text and "tls://" in caplog.text


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def certificates(tmp_path: Path) -> Path:
    """A certificate authority and one certificate it signed for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    folder = tmp_path / "tls"
    folder.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=shipit-test-ca", cwd=folder)  # fmt: skip
    _openssl("req", *ec, "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=localhost",
             cwd=folder)  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "node.pem", "-days", "2", "-extfile", "san.ext",
             cwd=folder)  # fmt: skip
    return folder


def _tls_environment(certs: Path) -> dict[str, str]:
    """Dask's TLS settings, as a user would put them in the environment of every process."""
    env = {
        "DASK_DISTRIBUTED__COMM__DEFAULT_SCHEME": "tls",
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(certs / "ca.pem"),
    }
    for role in ("SCHEDULER", "WORKER", "CLIENT"):
        env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__CERT"] = str(certs / "node.pem")
        env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__KEY"] = str(certs / "node.key")
    return env


@pytest.fixture
def tls_cluster(
    tmp_path: Path, bare_python: Path, certificates: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Client]]:
    """A real tls:// scheduler and worker, processes configured through the environment."""
    for key, value in _tls_environment(certificates).items():
        monkeypatch.setenv(key, value)
    workdir = tmp_path / "nodes"
    workdir.mkdir()
    nodes = ProcessCluster(bare_python, workdir)
    try:
        address = nodes.start_scheduler()
        nodes.start_worker()
        security = Security(
            tls_ca_file=str(certificates / "ca.pem"),
            tls_client_cert=str(certificates / "node.pem"),
            tls_client_key=str(certificates / "node.key"),
            require_encryption=True,
        )
        with Client(address, security=security, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
            yield address, client
    finally:
        nodes.close()


def _shipit(*args: str, tls: bool) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if tls or not k.startswith(("DASK_DISTRIBUTED__COMM__TLS", "DASK_DISTRIBUTED__COMM__REQ"))
    }
    return subprocess.run(
        [sys.executable, "-m", "shipit", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.cluster
def test_sync_and_check_work_against_a_tls_scheduler(
    tls_cluster: tuple[str, Client], project: Project
) -> None:
    address, client = tls_cluster
    assert address.startswith("tls://127.0.0.1:")
    project.write("{pkg}/sub.py", "VALUE = 7\n\ndef value():\n    return VALUE\n")

    synced = _shipit("sync", str(project.root), "--scheduler", address, tls=True)
    assert synced.returncode == 0, synced.stderr
    assert "plain" not in synced.stderr
    assert client.submit(project.module("{pkg}.sub").value, pure=False).result() == 7
    checked = _shipit("check", str(project.root), "--scheduler", address, tls=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    refused = _shipit(
        "sync", str(project.root), "--scheduler", address, "--timeout", "3", tls=False
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"ERROR cannot reach the scheduler at {address}")
    assert "no TLS settings" in refused.stderr and "DASK_DISTRIBUTED__COMM__TLS" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["--index-url=--trusted-host=evil"], "", "--index-url '--trusted-host=evil': not a URL"),
        (["--extra-index-url", "ftp://evil"], "", "an index must be an http, https or file URL"),
        ([], 'extra-packages = ["numpy; rm -rf /"]', "'numpy; rm -rf /' is not a requirement"),
        ([], 'extra-packages = ["--index-url=http://evil"]', "is not a requirement"),
        ([], 'ignore = ["numpy>=1"]', "'numpy>=1' is not a distribution name"),
        ([], 'index-url = "--index-url http://evil"', "not a URL or a path"),
    ],
)
def test_hostile_requirements_and_pip_options_are_refused_before_connecting(
    project: Project, args: list[str], config: str, message: str
) -> None:
    (project.root / "pyproject.toml").write_text(f"[tool.shipit]\n{config}\n")
    # An address nothing listens on: refusing must come first, and fast.
    result = cli("sync", str(project.root), "--scheduler", "tcp://127.0.0.1:9", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("ERROR ") and message in result.stderr.splitlines()[0]
    assert "cannot reach" not in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if not line.startswith("TIP")]) == 1


def test_nothing_runs_through_a_shell() -> None:
    """Every process shipit starts gets an argument list, never a command line for a shell."""
    import ast

    import shipit

    for source in Path(shipit.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call):
                continue
            called = ast.unparse(node.func)
            assert called not in ("os.system", "os.popen", "subprocess.getoutput"), source
            if called.startswith("subprocess.") or called.endswith("create_subprocess_shell"):
                assert not called.endswith("_shell"), (source, called)
                shell = [k for k in node.keywords if k.arg == "shell"]
                assert not shell, f"{source.name}: {called} with shell="
                assert node.args and not isinstance(node.args[0], (ast.Constant, ast.JoinedStr)), (
                    f"{source.name}: {called} given a string"
                )


@pytest.mark.cluster
def test_dry_run_lists_exactly_what_a_sync_ships_and_no_secret(
    local_cluster: Cluster, project: Project
) -> None:
    for rel in (".env.local", "deploy.pem", ".ssh/id_ed25519", ".aws/config", ".git/config",
                "scratch.log", "data/table.csv"):  # fmt: skip
        project.write(f"{{pkg}}/{rel}", "s3cr3t\n")
    project.write(".gitignore", "*.log\n")
    # Even an include that names every hidden file lets no secret through.
    (project.root / "pyproject.toml").write_text(
        f'[tool.shipit]\ninclude = ["{project.name}/.*"]\n'
    )
    listed = json.loads(_shipit("sync", str(project.root), "--dry-run", "--json", tls=False).stdout)
    would_ship = {u["name"]: set(u["files"]) for u in listed["units"]}
    assert would_ship[project.name] == {
        f"{project.name}/{f}" for f in ("__init__.py", "sub.py", "probe.py", "data/table.csv")
    }

    synced = _shipit(
        "sync", str(project.root), "--scheduler", local_cluster.scheduler_address, tls=False
    )
    assert synced.returncode == 0, synced.stderr

    def held(dask_scheduler):  # type: ignore[no-untyped-def]
        units = dask_scheduler.plugins["shipit"].units
        return {name: set(unit["manifest"]) for name, unit in units.items()}

    assert local_cluster.client.run_on_scheduler(held) == would_ship
