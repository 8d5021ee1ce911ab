"""The access log: one line per callback, buffered and written a few times a second.

The standard ``logging`` machinery costs more per line than the rest of a callback (a
record, caller lookup, formatting, a write and flush per line); these lines are built with
one ``orjson.dumps`` and leave in one ``write`` per flush interval, in the same shape as
the JSON log lines (``time``, ``level``, ``logger``, ``message`` and the fields).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import orjson

from receiver.logs import escape_controls

_FLUSH_SECONDS = 0.2
# Small: a larger buffer of lines costs more in cache misses than it saves in writes.
_FLUSH_BYTES = 16 * 1024


class AccessLog:
    """Collects lines and writes them to ``write`` (standard error by default)."""

    def __init__(
        self,
        fmt: str = "json",
        write: Callable[[bytes], object] | None = None,
        flush_seconds: float = _FLUSH_SECONDS,
    ) -> None:
        self._json = fmt == "json"
        self._write = write or (lambda data: os.write(2, data))
        self._flush_seconds = flush_seconds
        self._lines: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    def _time(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def line(self, fields: dict[str, Any]) -> None:
        """Queue one access-log line."""
        stamp = self._time(time.time())
        if self._json:
            document = {
                "time": stamp,
                "level": "INFO",
                "logger": "receiver.access",
                "message": "callback",
                **fields,
            }
            data = orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)
        else:
            pairs = escape_controls(" ".join(f"{key}={value}" for key, value in fields.items()))
            data = f"{stamp} INFO receiver.access callback {pairs}\n".encode()
        self._lines.append(data)
        self._size += len(data)
        if self._size >= _FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            with contextlib.suppress(RuntimeError):  # no running loop: flushed on close
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._flush_seconds, self.flush)

    def flush(self) -> None:
        """Write every queued line now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines:
            data = b"".join(self._lines)
            self._lines.clear()
            self._size = 0
            with contextlib.suppress(OSError):  # a closed log must not fail a callback
                self._write(data)
