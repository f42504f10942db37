"""Which loaded modules a new version of a unit makes stale, by the static import graph.

A save changes a few files. The modules loaded from those files are stale, and so is every
loaded module that holds something of a stale one, transitively, across units: what it took
with ``from a.b import f``, ``from . import b`` or ``from a import *``, a module it holds
whole (``import a.b as c``, ``importlib.import_module("a.b")``), or a name it reaches through
one that ``import a.b`` binds (``a.b.f`` in its text). A name a package passes on (``from
.core import Symbol`` in its ``__init__``) counts as held from where it comes, so editing one
module of a package that gathers every name does not reload all of its takers; a module that
looks a name up in a file that changed goes too (the name may come from elsewhere now).
Everything else stays loaded.

The graph is read from the files as text, never by importing them. Imports inside a function
run at each call and find the fresh module themselves, and imports under ``if
TYPE_CHECKING:`` never run: neither is an edge. Where the imports of a module cannot be known
from its text (an import by a computed name, ``__path__`` or ``sys.modules`` changed as it
loads), the module goes with any change in its unit.

Examples::

    >>> found = imports_of(b"import a.b\\nfrom .c import d\\nfrom . import e\\n", "p.m")
    >>> sorted(found.takes), sorted(found.runs)
    ([('a', 'b'), ('p', 'e'), ('p.c', 'd')], ['a.b'])
    >>> imports_of(b"def f():\\n    import x\\nmod = __import__(name)\\n", "m").opaque
    True
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Iterator
from typing import NamedTuple

# An import statement at the start of a line; a parenthesised list, or lines ending in a
# backslash, may span lines.
_STATEMENT = re.compile(
    rb"^([ \t]*)(?:import[ \t]+((?:[^\n#;\\]|\\\r?\n)+)"
    rb"|from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]*(\([^)]*\)|(?:[^\n#;\\]|\\\r?\n)+))",
    re.M,
)
_CONTINUED = re.compile(r"\\\r?\n")
# A call, not the definition of a function of that name (sympy defines ``import_module``).
_CALL = re.compile(
    rb"^([ \t]*)(?!(?:async[ \t]+)?def[ \t])[^\n#]*?\b(?:import_module|__import__)\("
    rb"(?!\s*\))\s*(?:(['\"])([\w.]*)\2)?",
    re.M,
)
_TRICK = re.compile(
    rb"^([ \t]*)[^\n#]*?(?:\b__path__\s*(?:[+]?=(?!=)|\.(?:append|extend|insert))"
    rb"|\bextend_path\(|\bsys\.modules\[[^\]\n]*\]\s*=(?!=)|\bsys\.modules\.(?:update|setdefault)\()",
    re.M,
)
_TRICK_WORDS = (b"__path__", b"extend_path", b"sys.modules")
_IMPORT_WORD = re.compile(rb"import")
_TRICK_WORD = re.compile(rb"__path__|extend_path|sys\.modules")
# A block whose body does not run as the module loads: a function's, or type checkers' only.
_NOT_RUN = re.compile(
    rb"[ \t]*(?:(?:async[ \t]+)?def[ \t]|if[ \t]+(?:typing\.)?TYPE_CHECKING[ \t]*:)"
)
_NAME = re.compile(r"[A-Za-z_][\w.]*")
_STDLIB = frozenset(sys.stdlib_module_names)
_ASSIGNED = re.compile(rb"(\w+)[ \t]*(?:[-+*/%&|^@]|//|\*\*|<<|>>)?=(?!=)")
_DEFINED = re.compile(rb"\b(?:def|class|global)[ \t]+(\w+)")


class Imports(NamedTuple):
    """What a module's top-level code takes from other modules, read from its text."""

    names: frozenset[str]  # modules it holds whole: ``import a.b as c``, ``import_module("x")``
    opaque: bool  # some of its imports cannot be read from its text
    # ``(p, n)`` of ``from p import n``, and of ``p.n`` used through a name ``import p...``
    # binds: ``p.n`` is a module, or a name module ``p`` holds (maybe from elsewhere).
    takes: frozenset[tuple[str, str]] = frozenset()
    # Modules ``import a.b.c`` names (it binds ``a``): a change to their file reaches it, and
    # each name it reaches through what it binds (``a.b.c.f`` in its text) is a take.
    runs: frozenset[str] = frozenset()
    stars: frozenset[str] = frozenset()  # ``p`` of ``from p import *``
    # Names it binds by exactly one ``from p import n [as name]`` and defines no other way:
    # ``name -> (p, n)``. Who takes ``name`` from it holds what ``p`` holds.
    exports: tuple[tuple[str, str, str], ...] = ()


def module_name(rel: str) -> str | None:
    """The module a shipped file is (``pkg/sub/__init__.py`` -> ``pkg.sub``), or None."""
    if not rel.endswith(".py"):
        return None
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None


def package_of(rel: str, manifest: Collection[str]) -> str | None:
    """The package a data file belongs to: its nearest folder with an ``__init__.py``."""
    parts = rel.split("/")[:-1]
    while parts:
        if "/".join([*parts, "__init__.py"]) in manifest:
            return ".".join(parts)
        parts.pop()
    return None


def imports_of(source: bytes, module: str, package: bool = False) -> Imports:
    """What the top-level code of ``module`` imports (``package``: it is a package's
    ``__init__``, the base of its relative imports). Independent of which other modules
    exist, so it is read once per content."""
    base = module if package else module.rpartition(".")[0]

    def at_top(match: re.Match[bytes]) -> bool:
        indent = match.group(1)
        return not indent or not _not_run(source, match.start(), len(indent))

    names: set[str] = set()
    takes: set[tuple[str, str]] = set()
    runs: set[str] = set()
    stars: set[str] = set()
    bound: dict[str, list[tuple[str, str] | None]] = {}  # name -> what binds it
    calls: list[re.Match[bytes]] = []
    for start in _lines_with(_IMPORT_WORD, source):
        end = source.find(b"\n", start)
        line = source[start:] if end < 0 else source[start:end]
        if b"import_module(" in line or b"__import__(" in line:
            call = _CALL.match(source, start)
            if call is not None:
                calls.append(call)
        match = _STATEMENT.match(source, start)
        if match is None or not at_top(match):
            continue
        plain, origin, imported = match.group(2), match.group(3), match.group(4)
        if plain is not None:
            for part in _joined(plain).split(","):
                words = part.split()
                found = _NAME.match(words[0]) if words else None
                if found is None:
                    continue
                name = found.group().rstrip(".")
                if len(words) >= 3 and words[1] == "as":
                    names.add(name)
                    bound.setdefault(words[2], []).append(None)
                else:
                    runs.add(name)
            continue
        target = _absolute(origin.decode(errors="replace"), base)
        if target is None:
            continue
        for part in _joined(imported).strip("() \t\r\n").split(","):
            words = part.split()
            if not words:
                continue
            if words[0] == "*":
                stars.add(target)
                continue
            takes.add((target, words[0]))
            name = words[2] if len(words) >= 3 and words[1] == "as" else words[0]
            bound.setdefault(name, []).append((target, words[0]))
    # What ``import a.b`` binds is used as ``a.b.c.f``: each such chain is a take.
    for top in sorted({r.partition(".")[0] for r in runs} - _STDLIB):
        for chain in re.finditer(rb"\b%s((?:\.\w+)+)" % re.escape(top.encode()), source):
            takes.add((top, chain.group(1).decode(errors="replace")[1:]))
    opaque = False
    for match in calls:
        if at_top(match):
            literal = match.group(3)
            if literal and not literal.startswith(b"."):
                names.add(literal.decode())
            else:
                opaque = True
    if not opaque and any(word in source for word in _TRICK_WORDS):
        opaque = any(
            (match := _TRICK.match(source, start)) is not None and at_top(match)
            for start in _lines_with(_TRICK_WORD, source)
        )
    names.discard(module)
    runs.discard(module)
    # Only a package's ``__init__`` is read for what it passes on: that is where real
    # packages gather their names (``from .core import Symbol``); from any other module a
    # take holds that module.
    exports: tuple[tuple[str, str, str], ...] = ()
    if package and bound:
        defined = _defined(source)
        exports = tuple(
            sorted(
                (name, *via[0])
                for name, via in bound.items()
                if len(via) == 1 and via[0] is not None and name not in defined
            )
        )
    return Imports(
        frozenset(names), opaque, frozenset(takes), frozenset(runs), frozenset(stars), exports
    )


def _defined(source: bytes) -> set[str]:
    """The names the text binds other than by import: ``def``, ``class``, ``global``, an
    assignment (and a keyword argument, which it cannot tell from one). Over-counting costs
    a reload, never a stale module."""
    found = {m.decode(errors="replace") for m in _ASSIGNED.findall(source)}
    found.update(m.decode(errors="replace") for m in _DEFINED.findall(source))
    return found


def _lines_with(word: re.Pattern[bytes], source: bytes) -> Iterator[int]:
    """The offset of each line holding ``word``, once each, in order. Finding a word is a
    fast search; matching a statement at every line start is not (20 MB/s)."""
    last = -1
    for found in word.finditer(source):
        start = source.rfind(b"\n", 0, found.start()) + 1
        if start != last:
            last = start
            yield start


def computes_imports(source: bytes) -> bool:
    """Whether a module's top-level imports cannot be read from its text (see
    :func:`imports_of`): what ``shipit sync --dry-run`` names once."""
    words = (b"import_module", b"__import__", *_TRICK_WORDS)
    return any(w in source for w in words) and imports_of(source, "").opaque


def _joined(text: bytes) -> str:
    """An import's names, its lines joined where a backslash continues them."""
    return _CONTINUED.sub(" ", text.decode(errors="replace"))


def _absolute(origin: str, base: str) -> str | None:
    """``from ..x import`` in a module of package ``base`` -> the absolute name."""
    dots = len(origin) - len(origin.lstrip("."))
    rest = origin[dots:]
    if not dots:
        return rest or None
    parts = base.split(".") if base else []
    if dots - 1 > len(parts) or (dots - 1 == len(parts) and not rest):
        return None
    parts = parts[: len(parts) - (dots - 1)]
    return ".".join([*parts, rest] if rest else parts) or None


def _not_run(source: bytes, start: int, indent: int) -> bool:
    """Whether the line at ``start``, indented by ``indent``, lies in a function's body (or under
    ``if TYPE_CHECKING:``), which does not run as the module loads. The enclosing blocks are
    read back by indentation, each the nearest line before it that is indented less and
    opens a block (a ``def``, or a line ending with a colon); lines indented less that open
    nothing (a string or a bracket spanning lines) are passed over. Where text still fools
    it, it errs towards "no", which costs a reload, never a stale module."""
    end = start - 1  # where the line before ends
    while end >= 0:
        begin = source.rfind(b"\n", 0, end) + 1
        line = source[begin:end]
        end = begin - 1
        stripped = line.lstrip(b" \t")
        if not stripped or stripped.startswith(b"#"):
            continue
        depth = len(line) - len(stripped)
        if depth < indent:
            if _NOT_RUN.match(line):
                return True
            if not stripped.partition(b"#")[0].rstrip().endswith(b":"):
                continue
            indent = depth
            if depth == 0:
                return False
    return False
    return False
