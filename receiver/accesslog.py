"""The access log: one line per callback, buffered and written a few times a second.

The standard ``logging`` machinery costs more per line than the rest of a callback (a
record, caller lookup, formatting, a write and flush per line); these lines are built with
one ``orjson.dumps`` and leave in one ``write`` per flush interval, in the same shape as
the JSON log lines (``time``, ``level``, ``logger``, ``message`` and the fields).

The write itself happens on a writer thread: a slow or full standard-error pipe (a log
collector that stalls) must never stall the event loop. What the thread has not written yet
is bounded (``max_pending_bytes``); beyond it lines are dropped and counted (``on_drop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from receiver.envelope import rfc3339
from receiver.logs import escape_controls

_FLUSH_SECONDS = 0.2
# Small: a larger buffer of lines costs more in cache misses than it saves in writes.
_FLUSH_BYTES = 16 * 1024
_MAX_PENDING_BYTES = 4 * 1024 * 1024
# A JSON line: the head, its time, the rest of the head, then the fields' members.
_JSON_HEAD = b'{"time":"'
_JSON_LAST = b'","level":"INFO","logger":"receiver.access","message":"callback"'
_JSON_MIDDLE = _JSON_LAST + b","


class LineWriter:
    """Writes chunks with ``write`` on its own thread; :meth:`submit` never blocks.

    The thread wakes every ``interval`` seconds and writes what is queued in one go: waking
    it per chunk would take the interpreter lock from the event loop hundreds of times a
    second.
    """

    def __init__(
        self,
        write: Callable[[bytes], object],
        max_pending_bytes: int = _MAX_PENDING_BYTES,
        on_drop: Callable[[int], None] = lambda lines: None,
        interval: float = _FLUSH_SECONDS,
    ) -> None:
        self._write = write
        self._max = max_pending_bytes
        self._on_drop = on_drop
        self._interval = interval
        self._pending: list[bytes] = []
        self._bytes = 0  # queued or being written
        self._closed = False
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, data: bytes, lines: int) -> None:
        """Queue ``data`` (``lines`` lines) for the thread, or drop it if too much waits."""
        with self._ready:
            if self._closed or self._bytes + len(data) > self._max:
                self._on_drop(lines)
                return
            self._pending.append(data)
            self._bytes += len(data)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (waiting at most ``timeout``), then stop the thread."""
        with self._ready:
            self._closed = True
            self._ready.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._ready:
                if not self._closed:
                    self._ready.wait(self._interval)
                chunks, self._pending = self._pending, []
                closed = self._closed
            if chunks:
                data = b"".join(chunks)
                with contextlib.suppress(OSError):  # a closed log must not fail the receiver
                    self._write(data)
                with self._ready:
                    self._bytes -= len(data)
            elif closed:
                return


class AccessLog:
    """Collects lines and writes them to ``write`` (standard error by default)."""

    def __init__(
        self,
        fmt: str = "json",
        write: Callable[[bytes], object] | None = None,
        flush_seconds: float = _FLUSH_SECONDS,
        *,
        max_pending_bytes: int = _MAX_PENDING_BYTES,
        on_drop: Callable[[int], None] = lambda lines: None,
    ) -> None:
        self._json = fmt == "json"
        self._writer = LineWriter(
            write or (lambda data: os.write(2, data)), max_pending_bytes, on_drop, flush_seconds
        )
        self._flush_seconds = flush_seconds
        self._lines: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def line(self, fields: dict[str, Any]) -> None:
        """Queue one access-log line."""
        stamp = rfc3339(time.time())
        if self._json:
            # The fixed head spliced onto the fields' own document: no merged dict per line.
            tail = orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)[1:]
            data = _JSON_HEAD + stamp.encode() + (_JSON_MIDDLE if fields else _JSON_LAST) + tail
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
            count = len(self._lines)
            self._lines.clear()
            self._size = 0
            self._writer.submit(data, count)

    def close(self) -> None:
        """Flush, then let the writer thread finish what is queued."""
        self.flush()
        self._writer.close()
