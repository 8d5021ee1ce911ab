"""The watcher's durable state: each job's last known state, and the update-time watermark."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


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


class MemoryStateStore:
    """State kept in memory (tests, a receiver without a durable intake)."""

    def __init__(self) -> None:
        self._state = WatchState()

    async def load(self) -> WatchState:
        """A copy of the state."""
        return WatchState(dict(self._state.jobs), self._state.watermark, self._state.initialised)

    async def save(self, state: WatchState) -> None:
        """Keep a copy of ``state``."""
        self._state = WatchState(dict(state.jobs), state.watermark, state.initialised)


class SqliteStateStore:
    """State in two tables of a sqlite file (next to the sqlite intake)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path)
        db.execute(
            "CREATE TABLE IF NOT EXISTS reconcile_jobs"
            " (job_id TEXT PRIMARY KEY, state TEXT, update_time TEXT)"
        )
        db.execute("CREATE TABLE IF NOT EXISTS reconcile_meta (name TEXT PRIMARY KEY, value REAL)")
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
