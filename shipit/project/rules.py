"""Which paths ship: the secret and junk patterns, the layout's own folders, .gitignore files
and ``[tool.shipit]`` include and exclude, answered path by path.

One set of rules serves both the full walk (``Project.units``) and the per-file question a
watcher asks (``Project.unit_name_for``), so the two always agree.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from pathspec import GitIgnoreSpec

from ..config import Config

logger = logging.getLogger(__name__)

# fmt: off
# Never shipped, whatever .gitignore or [tool.shipit] include says. Certificates (*.pem,
# *.crt, *.cer) are public data and ship inside a package, unless they hold a private key:
# a file whose content does is never shipped, whatever its name (see HeldBack in pack.py).
SECRET_PATTERNS = (
    ".env*", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
    "*.p8", "*.ppk", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    ".netrc", ".pypirc", ".pgpass", ".git-credentials", ".git/",
    "credentials", "credentials.json", "credentials.db", "access_tokens.db", "accessTokens.json",
    "*service-account*.json", "application_default_credentials.json",
    ".ssh/", ".aws/", ".gcloud/", "gcloud/", ".azure/", ".kube/", ".docker/", ".gnupg/",
)
# Left out by name at any depth, unless include names them. Hidden names (".*") cover .git,
# .venv, .tox, .nox, .eggs, .mypy_cache, .pytest_cache, .ruff_cache and ".#" editor locks.
JUNK_PATTERNS = (
    ".*", "__pycache__/", "*.py[co]", "node_modules/", "dask-scratch-space/",
    "*.swp", "*.swo", "*~", "\\#*#", "*.egg-info/", "*.dist-info/",
    "test_*.py", "*_test.py", "conftest.py",
)
# build/, dist/, env/ are build output or environments only where tools put them; deeper down
# a folder of that name is more likely a real subpackage (mytool/build/, agent/env/).
_AT_PROJECT_ROOT = ("build/", "dist/", "examples/", "benchmarks/")
_AT_SOURCE_ROOT = (
    "tests/", "test/", "testing/", "docs/", "doc/", "venv/", "env/",
    "setup.py", "noxfile.py", "fabfile.py",
)
# fmt: on
# Shipped only when the file holds certificates and no private key: a CA bundle is package
# data (certifi's cacert.pem); a server's key pair under the same names is not.
CERTIFICATE_PATTERNS = ("*.pem", "*.crt", "*.cer")
_SECRETS = GitIgnoreSpec.from_lines(SECRET_PATTERNS)
_CERTIFICATE_NAMES = GitIgnoreSpec.from_lines(CERTIFICATE_PATTERNS)
SECRET_NAME = "named like a secret"
PRIVATE_KEY = "holds a private key"
# A private key, in whatever file: a PEM or PKCS#8 block (RSA, EC, DSA, ENCRYPTED, OPENSSH)
# with its base64 body, a PuTTY key file. Code that only names the markers (a parser's
# "-----BEGIN RSA PRIVATE KEY-----" constant) holds no key; certificates alone are public.
_PRIVATE_KEY = re.compile(
    rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[ \t]*\r?\n"
    rb"(?:[\w-]+:[^\n]*\r?\n|[ \t]*\r?\n)*"  # RFC 1421 headers (Proc-Type: 4,ENCRYPTED)
    rb"[ \t]*[A-Za-z0-9+/=]{40,}"
    rb"|^PuTTY-User-Key-File-\d+: ",
    re.M,
)
_CERTIFICATE = re.compile(rb"-----BEGIN (?:TRUSTED |X509 )?CERTIFICATE-----")


def holds_private_key(data: bytes) -> bool:
    r""">>> body = b"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz\n"
    >>> holds_private_key(b"-----BEGIN OPENSSH PRIVATE KEY-----\n" + body)
    True
    >>> holds_private_key(b'MARKER = "-----BEGIN RSA PRIVATE KEY-----"\n')
    False
    """
    return _PRIVATE_KEY.search(data) is not None


def certificates_only(path: Path) -> str | None:
    """None when the file holds certificates and no private key; else why it never ships."""
    try:
        data = path.read_bytes()
    except OSError:  # gone, or unreadable: the walk names what it cannot read
        return SECRET_NAME
    if holds_private_key(data):
        return PRIVATE_KEY
    return None if _CERTIFICATE.search(data) else SECRET_NAME


_JUNK = GitIgnoreSpec.from_lines(JUNK_PATTERNS)


class Rules:
    """Path by path (POSIX, project-relative): does the walk enter this folder, ship this file?

    The walk only asks about paths whose folders it entered. Folder verdicts and .gitignore
    files are cached, so a question costs a few dictionary look-ups and pattern matches.
    """

    def __init__(self, root: Path, config: Config, prefixes: Iterable[str]) -> None:
        self._root = root
        self._include = GitIgnoreSpec.from_lines(config.include)
        self._exclude = GitIgnoreSpec.from_lines(config.exclude)
        self._include_parents = _literal_parents(config.include)
        self._layout = GitIgnoreSpec.from_lines(_layout_lines(prefixes))
        # Files of units held back by name: project-relative path -> why.
        self.held_back: dict[str, str] = {}
        # .py files in entered folders that only .gitignore leaves out (setuptools-scm's
        # _version.py): shipped after all when the unit's code imports them.
        self.git_ignored_modules: set[str] = set()
        self._logged: set[str] = set()
        self.reload()

    def reload(self) -> None:
        self._gitignores: dict[str, GitIgnoreSpec | None] = {}
        # True: entered; None: entered only to reach what an include pattern names below it.
        self._folders: dict[str, bool | None] = {}
        self._info_exclude = _read_ignore_file(self._root / ".git" / "info" / "exclude")

    def enters(self, folder: str) -> bool:
        """Whether the walk reaches this folder and goes into it ("" is the project root)."""
        return not folder or self._folder_verdict(folder) is not False

    def ships(self, file: str) -> bool:
        """Whether this file ships (if it is in a unit): its folders are entered, it is not
        left out, and it is not a secret."""
        if not self.enters(file.rpartition("/")[0]):
            return False
        why = SECRET_NAME if _SECRETS.match_file(file) else None
        if why is None and _CERTIFICATE_NAMES.match_file(file):
            why = certificates_only(self._root / file)
        if why is not None:
            if file not in self._logged:
                self._logged.add(file)
                logger.info("not shipping %s: it looks like a secret", file)
            self.held_back[file] = why
            return False
        return self._verdict(file, is_dir=False) is True

    def includes(self, key: str) -> bool:
        return self._include.match_file(key)

    def _folder_verdict(self, folder: str) -> bool | None:
        if folder not in self._folders:
            self._folders[folder] = self._verdict(folder, is_dir=True)
        return self._folders[folder]

    def _verdict(self, rel: str, *, is_dir: bool) -> bool | None:
        key = rel + "/" if is_dir else rel
        parent = rel.rpartition("/")[0]
        # Asking about the folder first makes any path answer like the walk that reaches it.
        folder_verdict = self._folder_verdict(parent) if parent else True
        if folder_verdict is False or _SECRETS.match_file(key) or self._exclude.match_file(key):
            return False
        if _own_match(self._include, key, parent):
            return True
        if folder_verdict is None or self._ignored(rel, key, parent, is_dir=is_dir):
            return None if is_dir and rel in self._include_parents else False
        return True

    def _ignored(self, rel: str, key: str, parent: str, *, is_dir: bool) -> bool:
        # Junk patterns are about a name, so match the name alone: a folder that include
        # re-admitted (".config/") must not pass its verdict on to everything inside it.
        name = rel.rpartition("/")[2] + ("/" if is_dir else "")
        if _JUNK.match_file(name) or _own_match(self._layout, key, parent):
            return True
        if is_dir and os.path.isfile(self._root / rel / "pyvenv.cfg"):
            return True
        if self._git_ignored(rel, key, parent):
            if not is_dir and rel.endswith(".py"):  # generated code the package may import
                self.git_ignored_modules.add(rel)
            return True
        return False

    def _git_ignored(self, rel: str, key: str, parent: str) -> bool:
        # Git's precedence: .git/info/exclude, then each .gitignore from the root down; the
        # deepest with a matching pattern decides, and a negation ("!x") re-admits.
        verdict = _own_match(self._info_exclude, key, parent)
        parts = rel.split("/")
        for depth in range(len(parts)):
            folder = "/".join(parts[:depth])
            spec = self._gitignore_in(folder)
            if spec is not None:
                local_parent = parent[len(folder) + 1 :] if folder else parent
                matched = _own_match(spec, key[len(folder) + 1 :] if folder else key, local_parent)
                verdict = verdict if matched is None else matched
        return bool(verdict)

    def _gitignore_in(self, folder: str) -> GitIgnoreSpec | None:
        if folder not in self._gitignores:
            path = self._root / folder / ".gitignore"
            self._gitignores[folder] = _read_ignore_file(path) if os.path.isfile(path) else None
        return self._gitignores[folder]


def is_secret(rel: str) -> bool:
    return _SECRETS.match_file(rel)


def _own_match(spec: GitIgnoreSpec, key: str, parent: str) -> bool | None:
    """The spec's verdict on ``key``, or None when it only repeats its verdict on the folder.

    pathspec applies a folder pattern ("gen/") to everything below the folder. The walk has
    already judged the folder; if include re-admitted it, its files must be judged on their own.
    """
    result = spec.check_file(key)
    if result.include and parent and spec.check_file(parent + "/").index == result.index:
        return None
    return result.include


def _layout_lines(prefixes: Iterable[str]) -> list[str]:
    lines = [f"/{pattern}" for pattern in _AT_PROJECT_ROOT]
    for prefix in prefixes:
        lines += [f"/{join(_escape(prefix), pattern)}" for pattern in _AT_SOURCE_ROOT]
    return lines


def _literal_parents(patterns: Iterable[str]) -> frozenset[str]:
    """Folders to enter to reach what include names: "src/gen/x.py" -> {"src", "src/gen"}.

    Only a pattern with a slash names a place: "_version.py" re-admits such files wherever the
    walk goes, but does not make it enter ignored folders such as .venv to look for them.
    """
    parents: set[str] = set()
    for pattern in patterns:
        parts = pattern.strip("/").split("/")
        if pattern.startswith(("!", "#")):
            continue
        for depth in range(1, len(parts)):
            if set("*?[\\") & set(parts[depth - 1]):
                break
            parents.add("/".join(parts[:depth]))
    return frozenset(parents)


def _read_ignore_file(path: Path) -> GitIgnoreSpec:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    return GitIgnoreSpec.from_lines(lines)


def join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix and name else prefix or name


def _escape(folder: str) -> str:
    return "".join(f"\\{c}" if c in "\\[]!*#?" else c for c in folder)
