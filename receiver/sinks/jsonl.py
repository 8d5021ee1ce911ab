"""Append envelopes to a JSON Lines file, one per line, fsynced before confirming."""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from receiver.batching import BatchThread
from receiver.envelope import render
from receiver.sink_settings import JsonlSinkSettings
from receiver.sinks.base import DeliveryError, Sink

_TAIL_BYTES = 8 * 1024 * 1024
_REMEMBERED_IDS = 50_000


def _tail_ids(path: Path) -> list[str]:
    """Event ids on the last lines of an existing file (a torn last line is skipped)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    ids = []
    for line in lines[-_REMEMBERED_IDS:]:
        try:
            ids.append(str(orjson.loads(line)["id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return ids


def _drop_torn_line(path: Path) -> None:
    """Cut a last line without its newline: a write the crash interrupted, never confirmed."""
    try:
        with path.open("r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read()
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            handle.truncate(size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail)))
    except FileNotFoundError:
        return


class JsonlSink(Sink):
    """Writes each envelope as one line; concurrent publishes share one write and fsync.

    ``path`` may be a template (e.g. ``events-{event_type}.jsonl``). An event id already
    written to a file (redelivery after a crash between the fsync and the intake ack) is
    not written again: the ids of each file's last lines are read when it is opened.
    """

    def __init__(self, settings: JsonlSinkSettings) -> None:
        super().__init__(settings.name, critical=settings.critical)
        self._template = str(settings.path)
        self._fsync = settings.fsync
        self._files: dict[str, int] = {}
        self._written: dict[str, OrderedDict[str, None]] = {}
        self._thread: BatchThread[tuple[str, str, bytes], None] = BatchThread(
            f"sink-{settings.name}", self._write, 512
        )

    async def start(self) -> None:
        await asyncio.to_thread(self._thread.start)

    async def close(self) -> None:
        await asyncio.to_thread(self._thread.stop, self._close_files)

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        path = render(self._template, envelope)
        try:
            await self._thread.submit((path, str(envelope["id"]), body))
        except OSError as error:
            raise DeliveryError(f"cannot write {path}: {error.strerror}") from None

    def _write(self, items: Sequence[tuple[str, str, bytes]]) -> list[None]:
        """Append each path's new lines at once; a failed write is cut off the file again.

        Ids count as written only after the fsync, so a batch that failed (disk full) is
        written in full by the retry, never skipped.
        """
        batches: dict[str, dict[str, bytes]] = {}
        for path, event_id, body in items:
            if path not in self._files:
                self._open(path)
            if event_id not in self._written[path]:
                batches.setdefault(path, {})[event_id] = body
        for path, lines in batches.items():
            fd = self._files[path]
            data = b"".join(body + b"\n" for body in lines.values())
            offset = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self._fsync:
                    os.fsync(fd)
            except OSError:
                os.ftruncate(fd, offset)
                raise
            written = self._written[path]
            written.update(dict.fromkeys(lines))
            while len(written) > _REMEMBERED_IDS:
                written.popitem(last=False)
        return [None] * len(items)

    def _open(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_line(Path(path))
        self._written[path] = OrderedDict.fromkeys(_tail_ids(Path(path)))
        self._files[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _close_files(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
