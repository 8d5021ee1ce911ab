"""The console's event history and live rooms, fed by the journal (every replica's events)."""

from __future__ import annotations

from typing import Any

from receiver.console.history import EventHistory
from receiver.console.rooms import RoomBoard
from receiver.console.settings import AdminSettings


class ConsoleRecorder:
    """Records every routed event and each sink's outcome, as the journal tells them."""

    def __init__(self, settings: AdminSettings) -> None:
        self.history = EventHistory(
            settings.history_events, settings.history_seconds, settings.history_bytes
        )
        self.rooms = RoomBoard(settings.rooms)

    def routed(
        self, envelope: dict[str, Any], body: bytes, sinks: list[str], at: float, repeat: bool
    ) -> None:
        """An event routed (``repeat``: again, by a partition's new owner: not counted twice)."""
        self.history.add(envelope, body, sinks, at)
        if not repeat:
            self.rooms.update(envelope, at)

    def settled(self, event_id: str, sink: str, outcome: str, error: str, at: float) -> None:
        self.history.settle(event_id, sink, outcome, error, at)
