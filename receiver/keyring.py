"""Callback keys from the settings and a mounted key file, reloaded when the file changes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from receiver.config import AuthSettings
from receiver.secretfiles import read_secret_lines

log = logging.getLogger("receiver.keys")


class KeyRing:
    """The accepted callback keys; ``reload`` re-reads the key file if it changed.

    A Kubernetes Secret mount swaps a symlink on update; ``stat`` follows it, so the file
    identity (inode, size, mtime) changes and the next poll picks the new keys up.
    """

    def __init__(self, settings: AuthSettings) -> None:
        self._inline = [key.get_secret_value() for key in settings.keys]
        self._file = settings.keys_file
        self._stamp: tuple[int, int, int] | None = None
        self.keys: list[str] = list(self._inline)
        if self._file is not None:
            self.reload()
            if not self.keys:
                raise ValueError(f"auth.keys_file {self._file} holds no key")

    def _file_stamp(self, path: Path) -> tuple[int, int, int]:
        info = os.stat(path)
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    def reload(self) -> bool:
        """Re-read the key file if it changed; True when the keys changed.

        A missing or empty file keeps the previous keys (a half-written update must not
        lock every callback out).
        """
        if self._file is None:
            return False
        stamp = self._file_stamp(self._file)
        if stamp == self._stamp:
            return False
        lines = read_secret_lines(self._file)
        for line in lines:
            if len(line) > 32:
                raise ValueError("a key in auth.keys_file is longer than 32 characters")
        self._stamp = stamp
        keys = self._inline + lines
        if not lines or keys == self.keys:
            return False
        self.keys = keys
        log.info("callback keys reloaded", extra={"key_count": len(keys)})
        return True
