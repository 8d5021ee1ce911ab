"""One clear line for a file the receiver's user cannot read or write.

In a container the receiver runs as a fixed uid (10001). A bind-mounted config file or
data directory owned by someone else would otherwise fail deep inside the TOML reader or
sqlite ("unable to open database file"), with a traceback that names neither the path
nor the user who needs access.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class AccessError(PermissionError):
    """A path the receiver needs is not readable or writable by its user; ``str`` is the line."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(errno.EACCES, message, str(path))

    def __str__(self) -> str:
        return str(self.strerror)


def _user() -> str:
    return f"uid {os.getuid()} (gid {os.getgid()})"


def _owner(path: Path) -> str:
    try:
        info = path.stat()
    except OSError:
        return "a directory above it cannot be searched"
    return f"owned by uid {info.st_uid}:{info.st_gid}, mode {stat.filemode(info.st_mode)}"


def _existing_ancestor(path: Path) -> Path:
    """``path`` or the nearest directory above it that exists (what mkdir would write in)."""
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return candidate
        except PermissionError:
            continue
    return Path("/")


def require_readable(path: Path, what: str) -> None:
    """Raise AccessError unless the receiver's user can read the file at ``path``."""
    path = Path(os.path.abspath(path))
    if not os.access(path, os.R_OK):
        raise AccessError(f"{what} {path} is not readable by {_user()}: {_owner(path)}", path)


def require_writable(path: Path, what: str, *, directory_too: bool = False) -> None:
    """Raise AccessError unless the file at ``path`` can be opened for writing.

    An existing file must be readable and writable; a missing one needs its directory
    (or the nearest one above it, which the receiver creates it under) writable.
    ``directory_too`` asks for the directory even when the file exists: sqlite creates
    its ``-wal`` and ``-shm`` files next to the database.
    """
    path = Path(os.path.abspath(path))  # a relative path is named from the working directory
    try:
        exists = path.exists()
    except PermissionError:
        exists = False
    if exists and not os.access(path, os.R_OK | os.W_OK):
        raise AccessError(f"{what} {path} is not writable by {_user()}: {_owner(path)}", path)
    if exists and not directory_too:
        return
    directory = _existing_ancestor(path.parent)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise AccessError(
            f"{what} {path}: directory {directory} is not writable by {_user()}: "
            f"{_owner(directory)}",
            path,
        )
