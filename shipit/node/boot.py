"""How shipit's node code reaches a node: as source, compiled there by the node's own Python.

The client never sends bytecode: a pickle of a function carries its code object, which a
node on another Python minor version cannot run (3.12 and 3.13 crash on 3.11's, 3.10
refuses it). What a node unpickles instead is a call of the built-in ``eval`` on a short
expression that runs this file's source, which defines :func:`load`; ``load`` puts the
package ``shipit.node`` under the name ``_shipit_agent_<agent>`` (one per agent version, so
two clients of different shipit versions do not mix) from the sources in the bundle, once
per process, and returns the object asked for.

This file must stay importable on its own: it is executed before any other part of the
agent exists, and uses only the standard library.
"""

from __future__ import annotations

import _imp
import importlib.util
import json
import sys
import zlib
from typing import Any

PREFIX = "_shipit_agent_"


class _SourceLoader:
    """Finds and loads the modules of one agent package from their sources."""

    def __init__(self, package: str, sources: dict[str, str]) -> None:
        self.package = package
        self.sources = sources  # "store" -> its source; "__init__" for the package itself

    def _key(self, fullname: str) -> str | None:
        if fullname == self.package:
            return "__init__"
        head, _, tail = fullname.partition(".")
        return tail if head == self.package and tail in self.sources else None

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        key = self._key(fullname)
        if key is None:
            return None
        spec = importlib.util.spec_from_loader(
            fullname,
            self,  # type: ignore[arg-type]
            origin=self._origin(key),
            is_package=key == "__init__",
        )
        if spec is not None:
            spec.has_location = False
        return spec

    def _origin(self, key: str) -> str:
        return f"<shipit agent {self.package[len(PREFIX) :]}>/shipit/node/{key}.py"

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        key = self._key(module.__name__) or "__init__"
        code = compile(self.sources[key], self._origin(key), "exec", dont_inherit=True)
        exec(code, module.__dict__)

    def get_source(self, fullname: str) -> str | None:  # for tracebacks (linecache)
        key = self._key(fullname)
        return None if key is None else self.sources[key]

    def invalidate_caches(self) -> None:
        pass


def load(agent: str, bundle: bytes, module: str, name: str, args: Any = None) -> Any:
    """``module.name`` of this agent's package, put in place first if need be; called with
    ``args`` when they are given (a tuple)."""
    package = PREFIX + agent
    _imp.acquire_lock()
    try:
        if package not in sys.modules:
            sources = json.loads(zlib.decompress(bundle).decode("utf-8"))
            loader = _SourceLoader(package, sources)
            sys.meta_path.append(loader)
            importlib.import_module(package)
    finally:
        _imp.release_lock()
    obj = getattr(importlib.import_module(f"{package}.{module}"), name)
    return obj if args is None else obj(*args)
