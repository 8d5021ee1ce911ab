"""The pipeline observer that feeds the console's event history and live rooms."""

from __future__ import annotations

from typing import Any

from receiver.console.history import EventHistory
from receiver.console.rooms import RoomBoard
from receiver.console.settings import AdminSettings


class ConsoleRecorder:
    """Records every routed event and each sink's outcome (see :class:`Observer`)."""

    def __init__(self, settings: AdminSettings) -> None:
        self.history = EventHistory(
            settings.history_events, settings.history_seconds, settings.history_bytes
        )
        self.rooms = RoomBoard(settings.rooms)

    def routed(self, envelope: dict[str, Any], body: bytes, sinks: list[str]) -> None:
        self.history.add(envelope, body, sinks)
        self.rooms.update(envelope)

    def settled(self, event_id: str, sink: str, outcome: str, error: str = "") -> None:
        self.history.settle(event_id, sink, outcome, error)
