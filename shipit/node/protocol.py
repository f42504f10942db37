"""What crosses the wire between the client, the scheduler and the workers, and how a node
checks it before writing anything.

Every message is plain data (str, int, bytes, lists and dicts of them): nodes on another
Python version read them as well as the client's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import sys
import zipfile
from collections.abc import Iterator
from typing import Any, TypedDict

PLUGIN_NAME = "shipit"
# The layout of the state kept on the scheduler and worker objects: an agent of another
# protocol starts afresh instead of reading it.
PROTOCOL = 2
ERROR_KEY = "!error"  # no unit can have this name
APPLY_TIMEOUT = 300.0  # seconds a worker may take to apply one push

_HEX = frozenset("0123456789abcdef")
_LINK_MODE = 0o120000
# Names Windows gives to devices, whatever the suffix (``con.py`` opens the console).
_WINDOWS_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"]
    + [f"com{i}" for i in "123456789"]
    + [f"lpt{i}" for i in "123456789"]
)
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*\\')
WINDOWS_MAX_PATH = 260


class UnitVersion(TypedDict, total=False):
    """One unit as messages carry it: ``manifest`` maps each file's path inside the unit's
    folder to the sha256 of its bytes; ``python`` is the client's ``major.minor``."""

    name: str
    digest: str
    manifest: dict[str, str]
    project: str
    python: str


class Update(TypedDict):
    """Scheduler -> worker (``shipit_apply``): move from ``base`` to ``generation``."""

    epoch: str
    generation: int
    base: int
    changed: list[UnitVersion]
    removed: list[str]
    payloads: dict[str, bytes]


class NodeReply(TypedDict, total=False):
    """Per node, in the scheduler's answer to a push."""

    role: str
    ok: bool
    error: str


def python_of(version: str) -> str:
    """``3.12.1.final.0`` (or ``3.12.1``) -> ``3.12``."""
    return ".".join(version.split(".")[:2])


def this_python() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def mismatch_text(node_python: str, client_python: str) -> str:
    return (
        f"Python {node_python}, the client runs {client_python}: "
        "tasks from this client cannot run there"
    )


def check_digest(digest: object) -> None:
    if not (isinstance(digest, str) and len(digest) == 64 and _HEX.issuperset(digest)):
        raise ValueError(f"refused: {digest!r} is not a sha256 digest")


def check_path(rel: object) -> None:
    """A path from a message may name a file inside a version folder, and nothing else:
    no absolute path, no "..", no drive letter, no empty or "." part (and on Windows, where
    they are separators or streams, no backslash or colon)."""
    odd = "\0\\:" if os.name == "nt" else "\0"
    if (
        not isinstance(rel, str)
        or not rel
        or rel.startswith("/")
        or rel[1:2] == ":"
        or any(c in odd for c in rel)
        or any(part in ("", ".", "..") for part in rel.split("/"))
    ):
        raise ValueError(f"refused: unsafe path {rel!r}")


def windows_problem(rel: str, root_length: int = 0) -> str | None:
    """Why Windows cannot hold ``rel`` (a reserved device name, a trailing dot or space, a
    character it forbids, a path over 260 characters once under a folder of
    ``root_length``), or None."""
    for part in rel.split("/"):
        stem = part.split(".")[0].lower()
        if stem in _WINDOWS_RESERVED:
            return f"{part!r} is a device name on Windows"
        if part.endswith((".", " ")):
            return f"{part!r} ends with a dot or a space, which Windows drops"
        if _WINDOWS_FORBIDDEN.intersection(part) or any(ord(c) < 32 for c in part):
            return f"{part!r} holds a character Windows forbids in names"
    if root_length + 1 + len(rel) >= WINDOWS_MAX_PATH:
        return f"the path is over {WINDOWS_MAX_PATH} characters under the node's folder"
    return None


def check_unit(unit: Any, known: Any = None) -> None:
    """Raise ValueError unless a unit from a message is safe to write under the store: its
    name an import name, its digests sha256, its paths inside its own folder. Entries
    equal to ``known`` (the manifest this node checked and holds already) pass: a save of
    one file in a 2,000-file package checks one entry."""
    name = unit.get("name") if isinstance(unit, dict) else None
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"refused: {name!r} is not a unit name")
    check_digest(unit.get("digest"))
    manifest = unit.get("manifest", {})
    if not isinstance(manifest, dict):
        raise ValueError(f"refused: the manifest of {name} is not a mapping")
    known = known or {}
    for rel, digest in manifest.items():
        if known.get(rel) != digest:
            check_path(rel)
            check_digest(digest)
    if os.name == "nt":
        for rel in manifest:
            problem = windows_problem(rel)
            if problem is not None:
                raise ValueError(f"refused: {name}/{rel}: {problem}")


def case_clash(manifest: dict[str, str]) -> tuple[str, str] | None:
    """Two paths that only differ in case: one file on macOS and Windows."""
    seen: dict[str, str] = {}
    for rel in manifest:
        folded = rel.casefold()
        if folded in seen:
            return seen[folded], rel
        seen[folded] = rel
    return None


class Payloads:
    """File bytes by digest from pushed zips, each file read out only when asked for: a node
    whose host store already holds a file (another node wrote it) never inflates it. Names
    in a zip only select manifest entries, never a place to write; link entries are refused."""

    def __init__(self, payloads: dict[str, bytes], manifests: dict[str, dict[str, str]]) -> None:
        self._members: dict[str, tuple[zipfile.ZipFile, str]] = {}
        for name, data in payloads.items():
            zf = zipfile.ZipFile(io.BytesIO(data))
            for info in zf.infolist():
                member = info.filename
                if (info.external_attr >> 16) & 0o170000 == _LINK_MODE:
                    raise ValueError(f"refused: {member!r} is a link")
                digest = manifests[name].get(member)
                if digest is None:
                    raise ValueError(f"{member}: not in the manifest of {name}")
                self._members[digest] = (zf, member)

    def __contains__(self, digest: object) -> bool:
        return digest in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def get(self, digest: str) -> bytes | None:
        return self.read(digest) if digest in self._members else None

    def read(self, digest: str) -> bytes:
        zf, member = self._members[digest]
        content = zf.read(member)
        if hashlib.sha256(content).hexdigest() != digest:
            raise ValueError(f"{member}: content does not match its manifest entry")
        return content


def unzip(data: bytes, manifest: dict[str, str]) -> dict[str, bytes]:
    """Every file's bytes by digest from a pushed zip, each checked against the manifest."""
    payload = Payloads({"": data}, {"": manifest})
    return {digest: payload.read(digest) for digest in payload}


def error_text(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if str(e) else text


def lost_worker_text(e: BaseException, timeout: float) -> str:
    """Why a worker did not answer a push; a dropped connection says what it means."""
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return f"the worker did not answer within {timeout:g} s; the next sync brings it up to date"
    if isinstance(e, (OSError, EOFError)):  # distributed's CommClosedError is an OSError
        return (
            f"the worker went away during the sync ({type(e).__name__}); "
            "a worker that joins or rejoins takes the current code"
        )
    return error_text(e)
