"""What one node is and whom it can reach: the node side of ``shipit status`` and ``shipit doctor``.

Like ``shipit.nodeinfo``, this module imports only the standard library: the client pickles
it by value, so nodes run it whether or not shipit is installed there. Each function
returns plain dicts and never raises for what it finds.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def describe(dask_worker: Any = None, dask_scheduler: Any = None) -> dict[str, Any]:
    """This process's Python, host and, on a worker, its nanny, directory, memory and disk.

    >>> client.run(describe)["tcp://10.0.0.7:40331"]["nanny"]
    'tcp://10.0.0.7:39115'
    """
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "distributed": getattr(sys.modules.get("distributed"), "__version__", None),
        "bokeh": importlib.util.find_spec("bokeh") is not None,
    }
    # distributed passes its server as both arguments: only a worker has a nanny attribute.
    if dask_scheduler is not None and not hasattr(dask_scheduler, "nanny"):
        facts["dashboard"] = _serves_dashboard()
    if dask_worker is not None and hasattr(dask_worker, "nanny"):
        directory = str(dask_worker.local_directory)
        memory = getattr(getattr(dask_worker, "memory_manager", None), "memory_limit", None)
        facts |= {
            "name": str(dask_worker.name),
            "nanny": dask_worker.nanny,
            "local_directory": directory,
            "memory_limit": memory or None,
            "nthreads": dask_worker.state.nthreads,
            "free_disk": _free_disk(directory),
        }
    return facts


def _serves_dashboard() -> bool:
    """Whether this scheduler serves a dashboard page: Dask loads its Bokeh dashboard, or
    where Bokeh is missing the page that says so, only when the dashboard is on (not under
    ``dask scheduler --no-dashboard``)."""
    pages = ("distributed.dashboard.scheduler", "distributed.http.scheduler.missing_bokeh")
    return any(name in sys.modules for name in pages)


def _free_disk(directory: str) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def reach(
    addresses: list[str], timeout: float = 3.0, dask_worker: Any = None
) -> dict[str, str | None]:
    """Open a TCP connection to each address: None where it connected, else why not.

    Real connections, from this node: a firewall that drops or rejects a worker's inbound
    port shows here, not only when a task first moves data.

    >>> client.run(reach, ["tcp://10.0.0.7:40331"])["tcp://10.0.0.6:39007"]
    {'tcp://10.0.0.7:40331': 'ConnectionRefusedError: [Errno 111] Connection refused'}
    """
    own = getattr(dask_worker, "address", None)
    targets = [a for a in addresses if a != own]
    if not targets:
        return {}
    with ThreadPoolExecutor(min(16, len(targets))) as pool:
        answers = pool.map(lambda a: _connect(a, timeout), targets)
        return dict(zip(targets, answers, strict=True))


def _connect(address: str, timeout: float) -> str | None:
    try:
        host, port = _host_port(address)
    except ValueError as e:
        return f"cannot read the address: {e}"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s (a firewall dropping packets?)"
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def _host_port(address: str) -> tuple[str, int]:
    """``tcp://10.0.0.7:40331`` or ``tls://[::1]:40331`` -> (host, port)."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        rest = scheme
    if scheme not in ("tcp", "tls") and sep:
        raise ValueError(f"{scheme}:// is not a TCP transport")
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), int(port)
