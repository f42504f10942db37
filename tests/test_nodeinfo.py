"""shipit.nodeinfo in this process: fresh reads from disk, and loaded versus installed."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipit.node import probe as nodeinfo
from shipit.parity.versions import compare


@dataclass
class Site:
    """A folder on sys.path where the test 'pip installs' one distribution by hand."""

    root: Path
    name: str

    def install(self, version: str, code: str = "", record_extra: str = "") -> Path:
        """Replace the installed version the way pip does: old files out, new ones in."""
        for old in self.root.glob(f"{self.name}-*.dist-info"):
            shutil.rmtree(old)
        package = self.root / self.name
        package.mkdir(exist_ok=True)
        source = f"{code}\ndef where():\n    return {version!r}\n"
        (package / "__init__.py").write_text(source)
        info = self.root / f"{self.name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {self.name}\nVersion: {version}\n"
        )
        digest = hashlib.sha256(source.encode()).hexdigest()
        (info / "RECORD").write_text(
            f"{self.name}/__init__.py,sha256={digest},{len(source)}\n{record_extra}"
            f"{info.name}/METADATA,,\n{info.name}/RECORD,,\n"
        )
        return info

    def probe(self, node: object = None) -> dict:
        return nodeinfo.probe([self.name], dask_worker=node)["packages"][self.name]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    monkeypatch.syspath_prepend(str(tmp_path))
    yield Site(tmp_path, name)
    sys.modules.pop(name, None)


def test_a_distribution_not_imported_has_no_loaded_version(site: Site) -> None:
    site.install("1.0")
    assert site.probe() == {
        "version": "1.0",
        "imported": False,
        "loaded": None,
        "files_changed": False,
    }
    assert nodeinfo.probe(["surely-not-installed-here"])["packages"] == {
        "surely-not-installed-here": None
    }


def test_versions_are_read_from_disk_on_every_probe(site: Site) -> None:
    site.install("1.0")
    assert site.probe()["version"] == "1.0"
    site.install("2.0")
    assert site.probe()["version"] == "2.0"


def test_an_upgrade_after_the_first_probe_needs_a_restart(site: Site) -> None:
    site.install("1.0")
    __import__(site.name)
    worker = types.SimpleNamespace()  # what client.run passes as dask_worker
    assert site.probe(worker)["loaded"] == "1.0"
    site.install("2.0")
    info = site.probe(worker)
    assert (info["version"], info["loaded"]) == ("2.0", "1.0")
    facts = _node(site.name, info)
    row = compare(facts, facts, {"tcp://w": facts}, {site.name: True})[-1]
    assert row.client == "2.0 installed, 1.0 loaded"
    assert worker._shipit_loaded[site.name]["version"] == "1.0"  # kept by the worker object


def test_an_upgrade_before_the_first_probe_is_told_by_dunder_version(site: Site) -> None:
    site.install("1.0", code='__version__ = "1.0"')
    __import__(site.name)
    site.install("2.0", code='__version__ = "2.0"')  # written after this process started
    info = site.probe()
    assert (info["version"], info["loaded"]) == ("2.0", "1.0")


def test_a_stale_dunder_version_from_before_the_process_started_is_not_trusted(site: Site) -> None:
    info_dir = site.install("1.0", code='__version__ = "0.9.dev0"')  # a package that forgot it
    an_hour_ago = time.time() - 3600
    os.utime(info_dir, (an_hour_ago, an_hour_ago))
    __import__(site.name)
    assert site.probe()["loaded"] == "1.0"


def test_the_same_version_reinstalled_with_other_files_needs_a_restart(site: Site) -> None:
    site.install("1.0")
    __import__(site.name)
    assert site.probe()["files_changed"] is False
    site.install("1.0", record_extra=f"{site.name}/extra.py,sha256=abc,3\n")
    assert site.probe()["files_changed"] is True


def test_the_probe_names_python_and_the_platform() -> None:
    facts = nodeinfo.probe([])
    assert facts["python"] == ".".join(map(str, sys.version_info[:3]))
    assert (facts["platform"], facts["units"]) == (sys.platform, None)


def _node(name: str, info: dict) -> dict:
    return {"python": "3.11.7", "platform": "linux", "machine": "x86_64", "packages": {name: info}}
