"""``receiver`` with a fault in its SQLite intake's appends: run as ``python -m`` this module.

``INTAKE_FAULT`` names the fault. It strikes once, at the first append that reaches its
step after the file named by ``INTAKE_FAULT_ARMED`` appears (the file is removed then):

- ``fdatasync-eio``: the fdatasync of the WAL fails with EIO, writing nothing; later ones
  work again (what a disk does after a failed writeback);
- ``kill-before-commit``: SIGKILL after the events' INSERT, before its COMMIT;
- ``kill-before-fdatasync``: SIGKILL after the COMMIT, before the fdatasync of the WAL;
- ``kill-before-answer``: SIGKILL after that fdatasync, before the answer is sent.

Only the intake file is touched: the dead-letter file and the sinks run as they are.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

from receiver import cli

FAULT = os.environ.get("INTAKE_FAULT", "")
ARMED = os.environ.get("INTAKE_FAULT_ARMED", "")
INTAKE_NAME = "intake.db"

_fdatasync = os.fdatasync
_connect = sqlite3.connect
_appended = False  # the last commit held events: the next fdatasync of the WAL is theirs


def strikes(fault: str) -> bool:
    """Whether ``fault`` is the one injected and armed; disarms it."""
    if fault != FAULT or not ARMED or not os.path.exists(ARMED):
        return False
    os.unlink(ARMED)
    return True


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class FaultyConnection(sqlite3.Connection):
    """The intake's connection: knows when a transaction holds events."""

    inserting = False

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        global _appended
        if sql.startswith("INSERT INTO events"):
            self.inserting = True
        elif sql == "ROLLBACK":
            self.inserting = False
        elif sql == "COMMIT" and self.inserting:
            self.inserting = False
            if strikes("kill-before-commit"):
                die()
            cursor = super().execute(sql, parameters)
            _appended = True
            return cursor
        return super().execute(sql, parameters)


def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
    if Path(database).name == INTAKE_NAME:
        kwargs["factory"] = FaultyConnection
    connection: sqlite3.Connection = _connect(database, *args, **kwargs)
    return connection


def fdatasync(fd: Any) -> None:
    global _appended
    if not os.readlink(f"/proc/self/fd/{fd}").endswith(f"{INTAKE_NAME}-wal") or not _appended:
        _fdatasync(fd)
        return
    _appended = False
    if strikes("fdatasync-eio"):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    if strikes("kill-before-fdatasync"):
        die()
    _fdatasync(fd)
    if strikes("kill-before-answer"):
        die()


def main() -> int:
    sqlite3.connect = connect  # type: ignore[assignment]
    os.fdatasync = fdatasync
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
