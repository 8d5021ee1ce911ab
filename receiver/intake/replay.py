"""The replay window of the embedded intake: which event ids were stored, until when.

The intake's process is its file's only writer, so the ids live in memory (a duplicate is
answered without a database round trip) and the file keeps a marker row per id, appended
with the event, for the next start. Ids stored about together expire about together:
they are kept in windows (one a second or so, in marker-row order), so forgetting what
has expired, and knowing up to which marker row the file may drop, walks whole windows.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# Ids whose windows end within this many seconds of each other share a window.
_WINDOW_SECONDS = 1.0


@dataclass(slots=True)
class _Window:
    until: float  # the latest end of a window in it
    last_row: int  # its last marker row
    event_ids: list[str]


class ReplayWindow:
    """Event ids and the end of their replay windows."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._windows: deque[_Window] = deque()

    def __len__(self) -> int:
        return len(self._until)

    def holds(self, event_id: str, now: float) -> bool:
        """Whether ``event_id`` was stored and its window has not ended."""
        until = self._until.get(event_id)
        return until is not None and until >= now

    def add(self, event_id: str, until: float, marker_row: int) -> None:
        """Remember ``event_id`` until ``until``; its marker is row ``marker_row``."""
        self._until[event_id] = until
        windows = self._windows
        if windows and abs(windows[-1].until - until) <= _WINDOW_SECONDS:
            window = windows[-1]
            window.event_ids.append(event_id)
            window.last_row = marker_row
            if until > window.until:
                window.until = until
        else:
            windows.append(_Window(until, marker_row, [event_id]))

    def load(self, markers: dict[str, float], last_row: int) -> None:
        """The markers read back on start, all at or below row ``last_row``."""
        self._until.update(markers)
        if markers:
            self._windows.append(_Window(max(markers.values()), last_row, list(markers)))

    def expire(self, now: float) -> int:
        """Forget the windows that have ended; the last marker row they held (0: none)."""
        until, last_row = self._until, 0
        while self._windows and self._windows[0].until < now:
            window = self._windows.popleft()
            for event_id in window.event_ids:
                ends = until.get(event_id)
                if ends is not None and ends < now:
                    del until[event_id]
            last_row = window.last_row
        return last_row
