"""shipit in IPython and Jupyter: ``%load_ext shipit``.

The extension registers the ``%shipit`` magic (``watch [PATH]``, ``stop``, ``sync [PATH]``,
``check [PATH]``, ``status [PATH]``, each with ``--client NAME`` for a Client other than the
notebook's default one) and, while a watch started from the kernel runs, keeps the kernel's
own imports of the shipped units in step with the cluster: before each cell, the modules a
save changed are reloaded in place (IPython's ``superreload``, what ``%autoreload`` uses:
functions and classes defined before follow), so ``f(x)`` and ``client.submit(f, x)`` agree.
A watch shows one status area, updated in place: the last event, the nodes, an error until
it is fixed. IPython is imported only here, and only when a kernel loads the extension.
"""

from __future__ import annotations

import shlex
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import kernel
from .display import StatusArea
from .errors import ShipitError, UsageError
from .report import WatchEvent

if TYPE_CHECKING:
    from .watch import Watch

_extension: _Extension | None = None


class _Extension:
    """The kernel's side: the watch it runs, and the modules it keeps in step."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.watch: Watch | None = None
        self.shipped = threading.Event()  # a save reached the cluster since the last cell
        self.stopped_at: dict[str, str] = {}  # after a stop: each file's digest then
        self.said: set[str] = set()  # reload failures already printed

    def pre_run_cell(self, *args: Any) -> None:
        watch = self.watch
        if watch is None:
            self._say_unshipped()
            return
        units = watch._cached_units or watch.project.units()
        if self.shipped.is_set() or kernel.look(units):
            self.shipped.clear()
            done, failed = kernel.reload_stale(units)
            for line in sorted(set(failed) - self.said):
                print(f"shipit: {line}", file=sys.stderr)
            self.said = set(failed)  # each failure once, until it changes
            if done:
                from . import events

                events.synced()  # guards in this kernel check the new code

    def _say_unshipped(self) -> None:
        """After a stop, one line the first time a save is not shipped."""
        if not self.stopped_at:
            return
        changed = [p for p, d in self.stopped_at.items() if kernel.digest_of(p) != d]
        if changed:
            names = ", ".join(Path(p).name for p in changed[:3])
            print(f"shipit: saved since the watch stopped, not shipped: {names}", file=sys.stderr)
            self.stopped_at = {}

    def on_event(self, area: StatusArea) -> Any:
        def seen(event: WatchEvent) -> None:
            if event.kind == "shipped":
                self.shipped.set()
            area(event)

        return seen

    def start(self, client: Any, path: str) -> Watch:
        if self.watch is not None and not self.watch.stopping:
            raise UsageError("a watch already runs in this kernel", tip="%shipit stop first")
        from .watch import Watch

        root = Path(path).resolve()
        area = StatusArea(root)
        self.watch = Watch(client, path, on_event=self.on_event(area))
        self.stopped_at = {}
        return self.watch.start()

    def stop(self) -> None:
        watch, self.watch = self.watch, None
        if watch is None:
            print("shipit: no watch runs in this kernel")
            return
        units = watch._cached_units
        watch.stop()
        self.stopped_at = {
            str(u.root / f): kernel.digest_of(str(u.root / f)) or "" for u in units for f in u.files
        }


def _client(shell: Any, name: str | None) -> Any:
    if name is not None:
        if name not in shell.user_ns:
            raise UsageError(f"no variable {name!r} in this notebook", tip="--client NAME")
        return shell.user_ns[name]
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        raise UsageError(
            "no Client in this kernel", tip="make one (client = Client(...)) or --client NAME"
        ) from None


def shipit_magic(line: str) -> Any:
    """``%shipit watch|stop|sync|check|status [PATH] [--client NAME]``."""
    try:
        return _magic(line)
    except ShipitError as e:  # one line, as the command line says it; never a traceback
        print(f"shipit: {e}", file=sys.stderr)
        return None


def _magic(line: str) -> Any:
    from .parity.check import check
    from .status import status
    from .sync import sync

    assert _extension is not None
    words = shlex.split(line)
    name = None
    if "--client" in words:
        at = words.index("--client")
        name = words[at + 1] if at + 1 < len(words) else None
        del words[at : at + 2]
    command = words[0] if words else ""
    path = words[1] if len(words) > 1 else "."
    if command == "stop":
        _extension.stop()
        return None
    if command not in ("watch", "sync", "check", "status"):
        print("usage: %shipit watch|stop|sync|check|status [PATH] [--client NAME]")
        return None
    client = _client(_extension.shell, name)
    if command == "watch":
        _extension.start(client, path)
        return None
    if command == "sync":
        return sync(client, path, strict=False)
    if command == "check":
        return check(client, path, strict=False)  # the table shows as the cell's value
    return status(client, path)


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext shipit``: the ``%shipit`` magic, and the kernel kept in step."""
    global _extension
    if _extension is not None and _extension.shell is shell:
        return
    _extension = _Extension(shell)
    shell.register_magic_function(shipit_magic, magic_kind="line", magic_name="shipit")
    shell.events.register("pre_run_cell", _extension.pre_run_cell)


def unload_ipython_extension(shell: Any) -> None:
    global _extension
    if _extension is not None and _extension.shell is shell:
        if _extension.watch is not None:
            _extension.stop()
        shell.events.unregister("pre_run_cell", _extension.pre_run_cell)
        _extension = None
