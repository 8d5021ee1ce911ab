"""Append envelopes to a JSON Lines file, one per line, fsynced before confirming."""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from receiver.batching import GroupCommit, WorkerThread
from receiver.envelope import render
from receiver.file_access import require_writable
from receiver.sink_settings import JsonlSinkSettings
from receiver.sinks.base import Delivery, DeliveryError, Sink

_Line = tuple[str, str, bytes]  # path, event id, body
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
    """Writes each envelope as one line; a batch is one write and one fdatasync per file.

    The write happens on the event loop (into the page cache), the fdatasync on a worker
    thread (see :class:`receiver.batching.GroupCommit`). ``path`` may be a template (e.g.
    ``events-{event_type}.jsonl``). An event id already written to a file (redelivery after
    a crash between the fsync and the intake ack) is not written again: the ids of each
    file's last lines are read when it is opened.
    """

    lanes = 1

    def __init__(self, settings: JsonlSinkSettings) -> None:
        super().__init__(settings.name, critical=settings.critical)
        self._template = str(settings.path)
        self._static_path = "" if "{" in self._template else self._template
        self._files: dict[str, int] = {}
        self._written: dict[str, OrderedDict[str, None]] = {}
        self._thread = WorkerThread(f"sink-{settings.name}")
        self._writes: GroupCommit[list[_Line], None] = GroupCommit(
            self._write, self._sync if settings.fsync else None, self._thread, 64
        )
        # What the last write appended and its sync must make durable: (fd, offset, path).
        self._unsynced: list[tuple[int, int, str]] = []

    async def start(self) -> None:
        await asyncio.to_thread(self._thread.start)
        if self._static_path:  # read the file's tail now, not on the first publish
            await asyncio.to_thread(self._open, self._static_path)

    async def close(self) -> None:
        await asyncio.to_thread(self._thread.stop, self._close_files)

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        (outcome,) = await self.publish_batch([(envelope, body)])
        if outcome is not None:
            raise outcome

    async def publish_batch(self, batch: Sequence[Delivery]) -> list[BaseException | None]:
        template, path = self._template, self._static_path
        lines = [
            (path or render(template, envelope), envelope["id"], body) for envelope, body in batch
        ]
        try:
            await self._writes.submit(lines)
        except OSError as error:
            failure = DeliveryError(f"cannot write {error.filename or 'file'}: {error.strerror}")
            return [failure] * len(batch)
        # Ids count as written only once durable: a batch that failed (disk full) is
        # written in full by the retry, never skipped.
        for line_path, event_id, _ in lines:
            written = self._written[line_path]
            written[event_id] = None
            if len(written) > _REMEMBERED_IDS:
                written.popitem(last=False)
        return [None] * len(batch)

    def _write(self, batches: Sequence[list[_Line]]) -> list[None]:
        """Append each path's new lines at once; a failed write is cut off the files again."""
        by_path: dict[str, dict[str, bytes]] = {}
        for lines in batches:
            for path, event_id, body in lines:
                if path not in self._files:
                    self._open(path)
                if event_id not in self._written[path]:
                    by_path.setdefault(path, {})[event_id] = body
        self._unsynced = []
        for path, new in by_path.items():
            fd = self._files[path]
            offset = os.lseek(fd, 0, os.SEEK_END)
            self._unsynced.append((fd, offset, path))
            try:
                view = memoryview(b"".join(body + b"\n" for body in new.values()))
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as error:
                self._cut_back()
                error.filename = path
                raise
        return [None] * len(batches)

    def _sync(self) -> None:
        """Make the last write durable (on the worker thread); on failure, cut it off."""
        for fd, _, path in self._unsynced:
            try:
                os.fdatasync(fd)
            except OSError as error:
                self._cut_back()
                error.filename = path
                raise

    def _cut_back(self) -> None:
        for fd, offset, _ in self._unsynced:
            os.ftruncate(fd, offset)
        self._unsynced = []

    def _open(self, path: str) -> None:
        require_writable(Path(path), "jsonl sink file")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_line(Path(path))
        self._written[path] = OrderedDict.fromkeys(_tail_ids(Path(path)))
        self._files[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _close_files(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
