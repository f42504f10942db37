"""Nodes never write outside shipit's own folder, whatever a message to them says."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
import zipfile
from typing import Any

import pytest

import shipit
from shipit.node import protocol as remote

from .helpers import Cluster, Project

GOOD = hashlib.sha256(b"X = 1\n").hexdigest()


@pytest.mark.parametrize(
    "unit",
    [
        {"name": "pkg", "digest": GOOD, "manifest": {"../evil.py": GOOD}},
        {"name": "pkg", "digest": GOOD, "manifest": {"pkg/../../evil.py": GOOD}},
        {"name": "pkg", "digest": GOOD, "manifest": {"/etc/evil.py": GOOD}},
        {"name": "pkg", "digest": GOOD, "manifest": {"C:/evil.py": GOOD}},
        {"name": "pkg", "digest": GOOD, "manifest": {"pkg//x.py": GOOD}},
        {"name": "pkg", "digest": GOOD, "manifest": {"pkg/./x.py": GOOD}},
        {"name": "pkg", "digest": GOOD, "manifest": {"": GOOD}},
        {"name": "pkg", "digest": GOOD, "manifest": {"pkg/x.py": "../../x"}},
        {"name": "../x", "digest": GOOD, "manifest": {}},
        {"name": "pkg", "digest": "../../" + GOOD[:58], "manifest": {}},
        {"name": "pkg", "digest": GOOD, "manifest": [("pkg/x.py", GOOD)]},
    ],
)
def test_unsafe_units_are_refused(unit: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="refused"):
        remote.check_unit(unit)


def test_safe_units_pass() -> None:
    remote.check_unit({"name": "pkg", "digest": GOOD, "manifest": {"pkg/a b/x:y.py": GOOD}})


def test_entries_a_node_holds_already_are_not_checked_again_but_new_ones_are() -> None:
    held = {"pkg/x.py": GOOD}
    remote.check_unit({"name": "pkg", "digest": GOOD, "manifest": held}, known=held)
    for entry in ({"../evil.py": GOOD}, {"pkg/x.py": "../../x"}):
        with pytest.raises(ValueError, match="refused"):
            remote.check_unit(
                {"name": "pkg", "digest": GOOD, "manifest": {**held, **entry}}, known=held
            )


def test_a_link_inside_a_zip_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo("pkg/x.py")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, b"X = 1\n")
    with pytest.raises(ValueError, match="is a link"):
        remote.unzip(buffer.getvalue(), {"pkg/x.py": GOOD})


def _hostile(target: str) -> tuple[dict[str, Any], bytes]:
    """A unit whose one file is meant to land at ``target``, far outside any node folder."""
    rel = "../" * 30 + target.lstrip("/")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(rel, b"X = 1\n")
    unit = {"name": "evil", "digest": GOOD, "manifest": {rel: GOOD}}
    return unit, buffer.getvalue()


def test_a_hostile_push_writes_nothing_anywhere(local_cluster: Cluster, project: Project) -> None:
    client = local_cluster.client
    shipit.sync(client, project.root, install=False)  # the agent is on every node
    target = f"/tmp/shipit-escaped-{uuid.uuid4().hex}.py"
    unit, payload = _hostile(target)

    async def push() -> Any:
        return await client.scheduler.shipit_push(
            project="mallory", units=[unit], payloads={"evil": payload}
        )

    reply = client.sync(push)
    assert reply["status"] == "refused" and "unsafe path" in reply["error"]

    # Straight to a worker too, past the scheduler's check.
    worker = local_cluster.workers[0]

    async def apply() -> Any:
        return await client.rpc(worker).shipit_apply(
            epoch="x", generation=10**6, base=0, changed=[unit], removed=[],
            payloads={"evil": payload},
        )  # fmt: skip

    reply = client.sync(apply)
    assert "refused: unsafe path" in reply[remote.ERROR_KEY]
    assert not os.path.exists(target)
    # The nodes still run the project's code.
    value = project.module("{pkg}.sub").value
    assert local_cluster.on_every_worker(value, per_worker=1) == [1, 1]
