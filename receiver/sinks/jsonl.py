"""Append envelopes to JSON Lines files, one per line, fsynced before confirming."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import Container, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from receiver.batching import GroupCommit, WorkerThread
from receiver.envelope import render
from receiver.file_access import require_writable
from receiver.sink_settings import JsonlSinkSettings
from receiver.sinks.base import Delivery, DeliveryError, InvalidDestination, Sink

_Line = tuple[str, str, bytes]  # path, event id, body
_Failures = dict[str, OSError]  # per path: why its lines of a group commit failed
_TAIL_BYTES = 8 * 1024 * 1024
_REMEMBERED_IDS = 50_000
# A templated path is one file among many: each remembers fewer ids, still far more than
# a crash can leave written but unacknowledged (a batch is at most a few hundred events).
_TEMPLATED_TAIL_BYTES = 1024 * 1024
_TEMPLATED_REMEMBERED_IDS = 1_000
_MAX_NAME_BYTES = 255  # of one path component (NAME_MAX)


class _Unsynced(NamedTuple):
    """What one group commit appended to one file: synced, its ids count as written."""

    fd: int
    offset: int
    path: str
    ids: list[str]


def _tail_ids(path: Path, tail_bytes: int, count: int) -> list[str]:
    """Event ids on the last lines of an existing file (a torn last line is skipped)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - tail_bytes))
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    ids = []
    for line in lines[-count:]:
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
            handle.seek(size - 1)
            if handle.read(1) == b"\n":  # the usual case: no need to read the tail
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
    ``events-{event_type}.jsonl``): each file succeeds or fails on its own, so a file that
    cannot be written fails only its own events, and at most ``max_open_files`` stay open
    (the least recently written are closed). An event id already written to a file
    (redelivery after a crash between the fsync and the intake ack) is not written again:
    the ids of a file's last lines are read when it is opened.
    """

    lanes = 1

    def __init__(self, settings: JsonlSinkSettings) -> None:
        super().__init__(settings.name, critical=settings.critical)
        self._template = str(settings.path)
        self._static_path = "" if "{" in self._template else self._template
        self._max_open = settings.max_open_files
        self._fsync = settings.fsync
        self._tail_bytes, self._remembered = (
            (_TAIL_BYTES, _REMEMBERED_IDS)
            if self._static_path
            else (_TEMPLATED_TAIL_BYTES, _TEMPLATED_REMEMBERED_IDS)
        )
        self._files: OrderedDict[str, int] = OrderedDict()  # least recently written first
        self._written: dict[str, OrderedDict[str, None]] = {}  # ids per open file
        self._thread = WorkerThread(f"sink-{settings.name}")
        self._writes: GroupCommit[list[_Line], _Failures] = GroupCommit(
            self._write, self._sync if settings.fsync else None, self._thread, 64
        )
        # The group commit under way: what its sync must make durable, what failed.
        self._unsynced: list[_Unsynced] = []
        self._failures: _Failures = {}

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
        """Write the batch; each event fails only with the file it goes to."""
        outcomes: list[BaseException | None] = [None] * len(batch)
        lines: list[_Line] = []
        positions: list[int] = []
        for position, (envelope, body) in enumerate(batch):
            try:
                path = self._static_path or self._destination(envelope)
            except Exception as error:  # an envelope it cannot render fails on its own
                outcomes[position] = error
                continue
            lines.append((path, envelope["id"], body))
            positions.append(position)
        if not lines:
            return outcomes
        failures = await self._writes.submit(lines)
        errors: dict[str, DeliveryError] = {}
        for (path, _, _), position in zip(lines, positions, strict=True):
            if path in failures:
                if path not in errors:
                    reason = failures[path].strerror or str(failures[path])
                    errors[path] = DeliveryError(f"cannot write {path}: {reason}")
                outcomes[position] = errors[path]
        return outcomes

    def _destination(self, envelope: dict[str, Any]) -> str:
        """The rendered path of ``envelope``; InvalidDestination if no file can have it."""
        path = render(self._template, envelope)
        if "\x00" in path:
            raise InvalidDestination(f"rendered path {path!r} holds a NUL")
        if any(len(os.fsencode(part)) > _MAX_NAME_BYTES for part in path.split(os.sep)):
            raise InvalidDestination(
                f"rendered path {path!r} has a name over {_MAX_NAME_BYTES} bytes"
            )
        return path

    def _write(self, batches: Sequence[list[_Line]]) -> list[_Failures]:
        """Append each path's new lines at once; a path that fails is cut back on its own.

        Ids written count only once durable: a failed write (disk full) is written in
        full by the retry, never skipped.
        """
        by_path: dict[str, dict[str, bytes]] = {}
        for lines in batches:
            for path, event_id, body in lines:
                by_path.setdefault(path, {}).setdefault(event_id, body)
        opening = sum(1 for path in by_path if path not in self._files)
        self._close_least_recent(self._max_open - opening, keep=by_path)
        self._unsynced, self._failures = [], {}
        for path, new in by_path.items():
            try:
                self._append(path, new)
            except OSError as error:
                self._failures[path] = error
        if self._fsync:  # the sync remembers the ids and closes files beyond the limit
            return [self._failures] * len(batches)
        for unsynced in self._unsynced:
            self._remember(unsynced.path, unsynced.ids)
        self._unsynced = []
        self._close_least_recent(self._max_open)
        return [self._failures] * len(batches)

    def _append(self, path: str, new: dict[str, bytes]) -> None:
        fd = self._file(path)
        written = self._written[path]
        ids = [event_id for event_id in new if event_id not in written]
        if not ids:
            return
        offset = os.lseek(fd, 0, os.SEEK_END)
        view = memoryview(b"".join(new[event_id] + b"\n" for event_id in ids))
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            self._cut_back(_Unsynced(fd, offset, path, ids))
            raise
        self._unsynced.append(_Unsynced(fd, offset, path, ids))

    def _sync(self) -> None:
        """Make the last write durable (on the worker thread); a file that fails is cut back."""
        for unsynced in self._unsynced:
            try:
                os.fdatasync(unsynced.fd)
            except OSError as error:
                self._cut_back(unsynced)
                self._failures[unsynced.path] = error
                continue
            self._remember(unsynced.path, unsynced.ids)
        self._unsynced = []
        self._close_least_recent(self._max_open)

    def _cut_back(self, unsynced: _Unsynced) -> None:
        """Remove what a failed write appended; a file that cannot be cut is closed, so
        reopening it reads back what it holds."""
        try:
            os.ftruncate(unsynced.fd, unsynced.offset)
        except OSError:
            self._forget(unsynced.path)

    def _remember(self, path: str, ids: list[str]) -> None:
        written = self._written.get(path)
        if written is None:  # closed since: reopening reads the ids back
            return
        for event_id in ids:
            written[event_id] = None
        while len(written) > self._remembered:
            written.popitem(last=False)

    def _file(self, path: str) -> int:
        """The open descriptor of ``path`` (opened if needed), now the most recent."""
        if path not in self._files:
            self._open(path)
        self._files.move_to_end(path)
        return self._files[path]

    def _open(self, path: str) -> None:
        require_writable(Path(path), "jsonl sink file")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_line(Path(path))
        ids = _tail_ids(Path(path), self._tail_bytes, self._remembered)
        self._files[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._written[path] = OrderedDict.fromkeys(ids)

    def _close_least_recent(self, limit: int, keep: Container[str] = ()) -> None:
        """Close the least recently written files beyond ``limit`` (except those of ``keep``)."""
        for path in list(self._files):
            if len(self._files) <= limit:
                return
            if path not in keep:
                self._forget(path)

    def _forget(self, path: str) -> None:
        with contextlib.suppress(OSError):  # the descriptor is released even so
            os.close(self._files.pop(path))
        del self._written[path]

    def _close_files(self) -> None:
        for path in list(self._files):
            self._forget(path)
