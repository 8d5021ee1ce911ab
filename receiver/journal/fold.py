"""What each replica makes of the journal: console history and rooms, callback memory."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from receiver.console.recorder import ConsoleRecorder
from receiver.events import EventType
from receiver.journal.entries import Routed, decode
from receiver.reconcile.callbacks import CallbackLog

log = logging.getLogger("receiver.journal")

_CALLBACK_TYPES = frozenset(EventType)
RECENT_IDS = 100_000
MAX_ID_CHARS = 128  # our ids are 32 hex digits


class JournalFold:
    """Folds each journal entry into the console's recorder and the callback log."""

    def __init__(
        self, console: ConsoleRecorder | None = None, callbacks: CallbackLog | None = None
    ) -> None:
        self.console = console
        self.callbacks = callbacks
        self.malformed = 0
        # Event ids folded lately: a partition's new owner routes again what the last one
        # had in hand, and that must not count twice in rooms and callbacks.
        self._recent: OrderedDict[str, None] = OrderedDict()

    def __call__(self, blob: bytes) -> None:
        entry = decode(blob)
        if entry is None:
            self.malformed += 1
            log.debug("journal entry malformed; skipped")
            return
        if isinstance(entry, Routed):
            repeat = self._seen(entry.envelope.get("id"))
            if self.console is not None:
                self.console.routed(entry.envelope, entry.body, entry.sinks, entry.at, repeat)
            if self.callbacks is not None and not repeat:
                self._record_callback(entry)
        elif self.console is not None:
            self.console.settled(entry.event_id, entry.sink, entry.outcome, entry.error, entry.at)

    def _seen(self, event_id: Any) -> bool:
        if not isinstance(event_id, str) or len(event_id) > MAX_ID_CHARS:
            return False
        if event_id in self._recent:
            return True
        self._recent[event_id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)
        return False

    def _record_callback(self, entry: Routed) -> None:
        envelope = entry.envelope
        data: Any = envelope.get("data")
        job_id = envelope.get("jobid")
        if not isinstance(data, dict) or not isinstance(job_id, str) or not job_id:
            return
        event_type = data.get("event_type")
        if not isinstance(event_type, str) or event_type not in _CALLBACK_TYPES:
            return
        message = data.get("message")
        state = message.get("state") if isinstance(message, dict) else None
        assert self.callbacks is not None
        self.callbacks.record(
            job_id, str(event_type), state if isinstance(state, str) else None, entry.at
        )
