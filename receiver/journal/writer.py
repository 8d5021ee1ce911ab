"""The pipeline's observer that writes what it sees to the journal."""

from __future__ import annotations

import time
from typing import Any

from receiver.journal.base import Journal
from receiver.journal.entries import routed_entry, settled_entry


class JournalWriter:
    """An :class:`~receiver.pipeline.work.Observer`: one entry per routing and per attempt."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def routed(self, envelope: dict[str, Any], body: bytes, sinks: list[str]) -> None:
        self._journal.write(routed_entry(body, sinks, time.time()))

    def settled(self, event_id: str, sink: str, outcome: str, error: str = "") -> None:
        self._journal.write(settled_entry(event_id, sink, outcome, error, time.time()))
