"""Is a folder entry a file shipit can ship as it is? Links, odd names and odd kinds of file.

Discovery asks only about entries its rules would ship. A regular file ships. A link ships
the file it points to, as long as that file lies inside the project: shipit never follows a
link out of it. A broken link, a link loop, a link out of the project and a name that is not
UTF-8 are refused with :class:`BadFile`, naming the entry, rather than left out in silence:
the user would otherwise find the file missing on the cluster.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import BadFile


def shippable(
    entry: os.DirEntry[str],
    rel: str,
    project_root: Path,
    is_secret: Callable[[str], bool] = lambda rel: False,
) -> bool:
    """True for a file to ship; False for a folder, a link to a folder, a fifo or a socket.

    ``rel`` is the entry's project-relative path. Raises :class:`BadFile` for an entry that
    cannot ship safely, a link to a file ``is_secret`` names included.
    """
    check_name(entry.path, rel)
    if not entry.is_symlink():
        return entry.is_file(follow_symlinks=False)
    try:
        os.stat(entry.path)
    except FileNotFoundError:
        raise BadFile(entry.path, f"broken link to {os.readlink(entry.path)}") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise BadFile(entry.path, "link loop") from None
        raise BadFile(entry.path, e.strerror or str(e)) from None
    target = Path(os.path.realpath(entry.path))
    if not target.is_relative_to(project_root):
        raise BadFile(entry.path, f"link to {target}, outside the project")
    if not target.is_file():
        return False  # links to folders are not followed (git does not either)
    target_rel = target.relative_to(project_root).as_posix()
    if is_secret(target_rel):
        raise BadFile(entry.path, f"link to {target_rel}, which looks like a secret")
    return True


def check_name(path: str, rel: str | None = None) -> None:
    """Raise :class:`BadFile` for a path (``rel``: the part that ships) that is not valid
    UTF-8: nodes could not name it."""
    try:
        (path if rel is None else rel).encode("utf-8")
    except UnicodeEncodeError:
        raise BadFile(path, "its name is not UTF-8") from None
