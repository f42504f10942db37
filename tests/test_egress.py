"""What leaves the scheduler for a push: one copy of the files per host, not per worker."""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import cloudpickle

import shipit

from .helpers import Cluster, Project

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _sent(dask_scheduler: Any) -> int:
    return int(dask_scheduler.plugins["shipit"].state()["sent_bytes"])


def _table_digest(pkg: str) -> str:
    import hashlib as _hashlib
    import importlib.resources as _resources

    return _hashlib.sha256(_resources.files(pkg).joinpath("table.bin").read_bytes()).hexdigest()


def test_a_large_push_crosses_to_each_host_once(local_cluster: Cluster, project: Project) -> None:
    client = local_cluster.client
    assert len(local_cluster.workers) == 2  # both on this host, sharing its store
    table = os.urandom(3 * 1024 * 1024)  # incompressible: the push carries all of it
    (project.root / project.name / "table.bin").write_bytes(table)
    shipit.sync(client, project.root, install=False)  # registers the agent, first push
    before = client.run_on_scheduler(_sent)
    table = os.urandom(len(table))
    (project.root / project.name / "table.bin").write_bytes(table)
    report = shipit.sync(client, project.root, install=False)
    assert report.ok
    sent = client.run_on_scheduler(_sent) - before
    assert len(table) <= sent < 1.5 * len(table), sent  # one copy, for two workers
    digest = hashlib.sha256(table).hexdigest()
    assert local_cluster.on_every_worker(_table_digest, project.name, per_worker=1) == [digest] * 2
