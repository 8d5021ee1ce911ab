"""The watcher's durable state: each job's last known state, the update-time watermark,
and the per-job record of accepted callbacks (:mod:`receiver.reconcile.callbacks`)."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import orjson

from receiver.reconcile.callbacks import MAX_JOB_ID_CHARS, JobCallbacks

# job id -> (listed by the watcher, record)
SavedCallbacks = dict[str, tuple[bool, JobCallbacks]]


@dataclass
class WatchState:
    """Last known ``(state, update_time)`` per job, the watermark, and whether a run happened."""

    jobs: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    watermark: float | None = None
    initialised: bool = False


class StateStore(Protocol):
    """Where the watcher keeps its state between sweeps and restarts."""

    async def load(self) -> WatchState:
        """The saved state (empty when nothing was saved)."""

    async def save(self, state: WatchState) -> None:
        """Replace the saved state."""

    async def load_callbacks(self) -> SavedCallbacks:
        """The saved per-job callback records (empty when none were saved)."""

    async def save_callbacks(self, records: SavedCallbacks) -> None:
        """Replace the saved per-job callback records."""

    async def close(self) -> None:
        """Release connections (if any)."""


def _copy(records: SavedCallbacks) -> SavedCallbacks:
    return {
        job: (listed, replace(entry, counts=dict(entry.counts)))
        for job, (listed, entry) in records.items()
    }


class MemoryStateStore:
    """State kept in memory (tests, a receiver without a durable intake)."""

    def __init__(self) -> None:
        self._state = WatchState()
        self._callbacks: SavedCallbacks = {}

    async def load(self) -> WatchState:
        """A copy of the state."""
        return WatchState(dict(self._state.jobs), self._state.watermark, self._state.initialised)

    async def save(self, state: WatchState) -> None:
        """Keep a copy of ``state``."""
        self._state = WatchState(dict(state.jobs), state.watermark, state.initialised)

    async def load_callbacks(self) -> SavedCallbacks:
        """A copy of the callback records."""
        return _copy(self._callbacks)

    async def save_callbacks(self, records: SavedCallbacks) -> None:
        """Keep a copy of ``records``."""
        self._callbacks = _copy(records)

    async def close(self) -> None:
        """Nothing to release."""


class SqliteStateStore:
    """State in two tables of a sqlite file (next to the sqlite intake)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def close(self) -> None:
        """Nothing held open: each call opens and closes the file."""

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path)
        db.execute(
            "CREATE TABLE IF NOT EXISTS reconcile_jobs"
            " (job_id TEXT PRIMARY KEY, state TEXT, update_time TEXT)"
        )
        db.execute("CREATE TABLE IF NOT EXISTS reconcile_meta (name TEXT PRIMARY KEY, value REAL)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS reconcile_callbacks (job_id TEXT PRIMARY KEY,"
            " listed INTEGER, counts TEXT, last_state TEXT, last_state_at REAL,"
            " updated_at REAL, room_id TEXT, processing_since REAL, ended_at REAL,"
            " silent_reported INTEGER)"
        )
        return db

    def _load(self) -> WatchState:
        with self._connect() as db:
            rows = db.execute("SELECT job_id, state, update_time FROM reconcile_jobs").fetchall()
            meta = dict(db.execute("SELECT name, value FROM reconcile_meta").fetchall())
        return WatchState(
            {job: (state, updated) for job, state, updated in rows},
            meta.get("watermark"),
            bool(meta.get("initialised")),
        )

    def _save(self, state: WatchState) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM reconcile_jobs")
            db.executemany(
                "INSERT INTO reconcile_jobs VALUES (?, ?, ?)",
                [(job, s, u) for job, (s, u) in state.jobs.items()],
            )
            db.execute("INSERT OR REPLACE INTO reconcile_meta VALUES ('initialised', ?)", (1.0,))
            if state.watermark is not None:
                db.execute(
                    "INSERT OR REPLACE INTO reconcile_meta VALUES ('watermark', ?)",
                    (state.watermark,),
                )

    async def load(self) -> WatchState:
        """The saved state, read in a worker thread."""
        return await asyncio.to_thread(self._load)

    async def save(self, state: WatchState) -> None:
        """Replace the saved state in one transaction."""
        await asyncio.to_thread(self._save, state)

    def _load_callbacks(self) -> SavedCallbacks:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM reconcile_callbacks").fetchall()
        saved: SavedCallbacks = {}
        for job, listed, counts, state, state_at, updated, room, since, ended, silent in rows:
            if len(job) > MAX_JOB_ID_CHARS:
                continue
            decoded = orjson.loads(counts) if counts else {}
            entry = JobCallbacks(
                {str(k): int(v) for k, v in decoded.items()} if isinstance(decoded, dict) else {},
                state,
                state_at,
                updated or 0.0,
                room,
                since,
                ended,
                bool(silent),
            )
            saved[job] = (bool(listed), entry)
        return saved

    def _save_callbacks(self, records: SavedCallbacks) -> None:
        rows = [
            (
                job,
                int(listed),
                orjson.dumps(e.counts).decode(),
                e.last_stream_state,
                e.last_stream_state_at,
                e.updated_at,
                e.room_id,
                e.processing_since,
                e.ended_at,
                int(e.silent_reported),
            )
            for job, (listed, e) in records.items()
        ]
        with self._connect() as db:
            db.execute("DELETE FROM reconcile_callbacks")
            db.executemany(
                "INSERT INTO reconcile_callbacks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    async def load_callbacks(self) -> SavedCallbacks:
        """The saved callback records, read in a worker thread."""
        return await asyncio.to_thread(self._load_callbacks)

    async def save_callbacks(self, records: SavedCallbacks) -> None:
        """Replace the saved callback records in one transaction."""
        await asyncio.to_thread(self._save_callbacks, records)
