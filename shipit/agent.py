"""shipit's node code as it travels to the scheduler and the workers: source, never bytecode.

``shipit/node/`` is read once, as text, into a bundle; its digest is the agent's version.
:func:`on_node` wraps one of its functions, and :func:`plugin` one of its plugins, in an
object that pickles as a call of the built-in ``eval``: the node compiles the bundle with its
own Python (see ``shipit.node.boot``). So a node on another Python minor version runs the
same agent, answers probes and says what it is, instead of crashing on the client's bytecode.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import node

_FOLDER = Path(node.__file__).parent
BOOT = (_FOLDER / "boot.py").read_text(encoding="utf-8")
_SOURCES = {
    path.stem: path.read_text(encoding="utf-8")
    for path in sorted(_FOLDER.glob("*.py"))
    if path.stem != "boot"
}
BUNDLE = zlib.compress(json.dumps(_SOURCES, sort_keys=True).encode("utf-8"), 9)
AGENT = hashlib.sha256(BOOT.encode("utf-8") + BUNDLE).hexdigest()[:16]
# Runs on the node: the boot source defines load(), which compiles the bundle there.
_EXPRESSION = "(exec(S, g := {}), g['load'](A, B, M, N, X))[1]"


class OnNode:
    """``shipit.node.<module>.<name>`` as it travels: unpickled, it is that object compiled
    by the node's Python (called with ``args`` if given). Called here, it runs locally."""

    def __init__(self, module: str, name: str, args: tuple[Any, ...] | None = None) -> None:
        self.module, self.name, self.args = module, name, args
        self.__name__ = name

    def __repr__(self) -> str:
        return f"<shipit.node.{self.module}.{self.name} as source>"

    def __reduce__(self) -> tuple[Any, ...]:
        names = {"S": BOOT, "A": AGENT, "B": BUNDLE, "M": self.module, "N": self.name}
        return (builtins.eval, (_EXPRESSION, {**names, "X": self.args}))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import importlib

        local = getattr(importlib.import_module(f"shipit.node.{self.module}"), self.name)
        return local(*args, **kwargs)


def on_node(func: Callable[..., Any]) -> OnNode:
    """``func``, a function of ``shipit.node``, as source for ``client.run`` and friends.

    Example::

        client.run(on_node(probe.probe), ["numpy"])
    """
    module = func.__module__
    if not module.startswith("shipit.node."):
        raise ValueError(f"{module}.{func.__qualname__} is not node code")
    return OnNode(module.rpartition(".")[2], func.__qualname__)


def plugin(cls: type, *args: Any) -> bytes:
    """The pickled plugin for ``register_scheduler_plugin`` / ``register_worker_plugin``:
    an instance of ``cls`` (a class of ``shipit.node``) made on the node from source."""
    return pickle.dumps(OnNode(cls.__module__.rpartition(".")[2], cls.__qualname__, args), 4)
