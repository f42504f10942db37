"""Sending shipit's node-side modules by value, so that nodes need not have shipit installed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from types import ModuleType

import cloudpickle

# cloudpickle's registry is global to the process. Blocks in several threads may send the
# same module at once (a guard's check during a long pip run): count them, and unregister a
# module when the last block that needed it ends, unless someone else registered it.
_lock = threading.Lock()
_users: dict[str, int] = {}


@contextlib.contextmanager
def by_value(*modules: ModuleType) -> Iterator[None]:
    """Within the block, functions and classes of ``modules`` pickle by value.

    >>> with by_value(nodeinfo):
    ...     client.run(nodeinfo.probe, names)
    """
    names = [m.__name__ for m in modules]
    with _lock:
        registered = set(cloudpickle.list_registry_pickle_by_value())
        for module, name in zip(modules, names, strict=True):
            if name in _users:
                _users[name] += 1
            elif name not in registered:
                cloudpickle.register_pickle_by_value(module)
                _users[name] = 1
    try:
        yield
    finally:
        with _lock:
            for module, name in zip(modules, names, strict=True):
                if name in _users:
                    _users[name] -= 1
                    if not _users[name]:
                        del _users[name]
                        cloudpickle.unregister_pickle_by_value(module)
