"""The replay window of the embedded intake: which event ids were stored, until when.

The intake's process is its file's only writer, so the ids live in memory (a duplicate is
answered without a database round trip) and the file keeps, for the next start, a marker
row per commit with its ids, written in the same transaction. Ids stored about together
expire about together: they are kept in windows (one a second or so, in marker-row
order), so forgetting what has expired, and knowing up to which marker row the file may
drop, walks whole windows. One commit's ids can fall in two windows (their signatures'
times differ), so a marker row may hold ids of a window still live: the file drops only
the rows below the oldest live window's first row.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# Ids whose windows end within this many seconds of each other share a window.
_WINDOW_SECONDS = 1.0


@dataclass(slots=True, eq=False)
class _Window:
    first: float  # the end of the first window in it: the others end within a second of it
    until: float  # the latest end of a window in it
    first_row: int  # its first marker row: the rows from here on may hold its ids
    last_row: int  # its last marker row
    keys: list[bytes | str]


def _key(event_id: str) -> bytes | str:
    """The receiver's ids (32 lowercase hex digits) as their 16 bytes: less memory a key."""
    if len(event_id) == 32:
        try:
            raw = bytes.fromhex(event_id)
        except ValueError:
            return event_id
        if raw.hex() == event_id:
            return raw
    return event_id


class ReplayWindow:
    """Event ids and the end of their replay windows (to the second: a window's latest)."""

    def __init__(self) -> None:
        self._window_of: dict[bytes | str, _Window] = {}
        self._windows: deque[_Window] = deque()

    def __len__(self) -> int:
        return len(self._window_of)

    def holds(self, event_id: str, now: float) -> bool:
        """Whether ``event_id`` was stored and its window has not ended."""
        window = self._window_of.get(_key(event_id))
        return window is not None and window.until >= now

    def add(self, event_id: str, until: float, marker_row: int) -> None:
        """Remember ``event_id`` until ``until``; its marker is row ``marker_row``."""
        windows = self._windows
        if windows and abs(until - windows[-1].first) <= _WINDOW_SECONDS:
            window = windows[-1]
            window.last_row = marker_row
            if until > window.until:
                window.until = until
        else:
            window = _Window(until, until, marker_row, marker_row, [])
            windows.append(window)
        key = _key(event_id)
        window.keys.append(key)
        self._window_of[key] = window

    def load(self, markers: dict[str, float], last_row: int) -> None:
        """The markers read back on start, all at or below row ``last_row``."""
        if markers:
            latest = max(markers.values())
            window = _Window(latest, latest, 1, last_row, [_key(e) for e in markers])
            self._windows.append(window)
            self._window_of.update(dict.fromkeys(window.keys, window))

    def expire(self, now: float) -> int:
        """Forget the windows that have ended; the last marker row the file may drop (0: none).

        That is the last row of the ended windows, or the row before the oldest live
        window's first row if it is lower (that row also holds some of its ids).
        """
        window_of, last_row = self._window_of, 0
        while self._windows and self._windows[0].until < now:
            window = self._windows.popleft()
            for key in window.keys:
                if window_of.get(key) is window:  # not stored again meanwhile
                    del window_of[key]
            last_row = window.last_row
        if last_row and self._windows:
            last_row = min(last_row, self._windows[0].first_row - 1)
        return last_row
