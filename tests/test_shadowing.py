"""Units that would replace what every node needs are refused before anything is sent (issue
12): a module named like the standard library or Dask's stack, and a sync run from inside a
package folder, whose modules would ship as top-level ones."""

from __future__ import annotations

import pytest

import shipit
from shipit.errors import InsidePackage, ShadowsNodeModule
from shipit.project.discover import discover
from shipit.project.shadow import dask_stack, what_it_replaces

from .helpers import REPO, Cluster, Project, cli


def test_the_standard_library_and_dasks_stack_are_never_unit_names() -> None:
    assert what_it_replaces("json") == "the standard library's json"
    assert what_it_replaces("this") == "the standard library's this"
    # read from the installed metadata: distributed's requirements and theirs
    assert {"distributed", "dask", "tornado", "cloudpickle", "msgpack", "toolz", "yaml"} <= (
        dask_stack()
    )
    assert {"jinja2", "markupsafe", "zict", "tblib", "psutil"} <= dask_stack()
    assert what_it_replaces("tornado") == "tornado, which Dask needs"
    assert what_it_replaces("montecarlo") is None
    assert what_it_replaces("rich") is None


def test_a_project_holding_logging_and_json_is_refused(project: Project) -> None:
    project.write("logging.py", "X = 1\n")
    project.write("json/__init__.py", "Y = 1\n")
    with pytest.raises(ShadowsNodeModule) as refused:
        discover(shipit.config.load_config(project.root))
    assert [(name, what) for name, _, what in refused.value.units] == [
        ("json", "the standard library's json"),
        ("logging", "the standard library's logging"),
    ]
    result = cli("sync", "--dry-run", cwd=project.root)
    assert result.returncode == 2
    assert "refused, nothing was sent: json (json/__init__.py) would replace the standard" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_a_sync_from_inside_a_package_folder_names_the_folder_to_run_from(
    project: Project,
) -> None:
    project.write("pyproject.toml", "[project]\nname = 'x'\nversion = '1'\n")
    inside = project.root / project.name
    with pytest.raises(InsidePackage) as refused:
        discover(shipit.config.load_config(inside))
    assert refused.value.run_from == str(project.root)
    (inside / "job.py").write_text("print('ran')\n")
    for command in (["sync"], ["sync", "--dry-run"], ["watch"], ["run", "job.py"]):
        result = cli(*command, "--scheduler", "tcp://127.0.0.1:1", cwd=inside)
        assert result.returncode == 2, (command, result)
        assert "is a package folder (it holds __init__.py)" in result.stderr, (command, result)
        assert f"run shipit from {project.root}" in result.stderr, (command, result)


@pytest.mark.cluster
def test_a_refused_project_sends_nothing_and_workers_keep_the_real_modules(
    process_cluster: Cluster, project: Project
) -> None:
    project.write("json/__init__.py", "def dumps(*a, **k):\n    return 'shadowed'\n")
    project.write("tornado.py", "BROKEN = True\n")
    result = cli("sync", "--scheduler", process_cluster.scheduler_address, cwd=project.root)
    assert result.returncode == 2, result
    assert "tornado (tornado.py) would replace tornado, which Dask needs" in result.stderr

    def real_modules() -> tuple[str, bool]:
        import json

        import tornado

        return json.dumps({"a": 1}), hasattr(tornado, "BROKEN")

    assert process_cluster.on_every_worker(real_modules) == [('{"a": 1}', False)] * (
        4 * len(process_cluster.workers)
    )
    nodes = shipit.status(process_cluster.client, REPO / "examples" / "montecarlo").nodes
    assert [n.units for n in nodes] == [{}] * (1 + len(process_cluster.workers))
