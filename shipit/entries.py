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
from pathlib import Path

from .errors import BadFile


def shippable(entry: os.DirEntry[str], project_root: Path) -> bool:
    """True for a file to ship; False for a folder, a link to a folder, a fifo or a socket.

    Raises :class:`BadFile` for an entry that cannot ship safely.
    """
    check_name(entry.path)
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
    return target.is_file()  # links to folders are not followed (git does not either)


def check_name(path: str) -> None:
    """Raise :class:`BadFile` for a path that is not valid UTF-8: nodes could not name it."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise BadFile(path, "its name is not UTF-8") from None
