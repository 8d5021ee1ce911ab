"""The journal of the configured intake backend."""

from __future__ import annotations

from collections.abc import Callable

from receiver.config import Settings
from receiver.journal.base import Journal, JournalLimits
from receiver.journal.nats import NatsJournal
from receiver.journal.redis import RedisJournal
from receiver.journal.sqlite import SqliteJournal, journal_path


def build_journal(settings: Settings, on_drop: Callable[[], None] = lambda: None) -> Journal:
    """Kept as long as the console's history: ``admin.history_events``/``_bytes``/``_seconds``."""
    admin, intake = settings.admin, settings.intake
    limits = JournalLimits(admin.history_events, admin.history_bytes, admin.history_seconds)
    if intake.backend == "redis":
        return RedisJournal(intake.url, intake.stream, limits, on_drop)
    if intake.backend == "nats":
        return NatsJournal(intake.url, intake.stream, limits, intake.replicas, on_drop)
    return SqliteJournal(journal_path(intake.path), limits, on_drop)
