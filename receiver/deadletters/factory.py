"""Build the dead-letter store the settings call for.

With the sqlite intake (one node) the letters stay in ``dead_letters.path``; with a shared
intake backend (``nats``, ``redis``) they go to that backend, under the intake's stream
name, so every replica and any one-off ``receiver dlq`` process see the same letters.
"""

from __future__ import annotations

from receiver.config import Settings
from receiver.deadletters.base import BaseDeadLetterStore
from receiver.deadletters.sqlite import SqliteDeadLetterStore


def shared_backend(settings: Settings) -> bool:
    """Whether dead letters live in a backend shared by the replicas."""
    return settings.intake.backend in ("nats", "redis")


def build_dead_letters(settings: Settings) -> BaseDeadLetterStore:
    """The configured dead-letter store (it connects on first use)."""
    intake = settings.intake
    if intake.backend == "redis":
        from receiver.deadletters.redis import RedisDeadLetterStore

        return RedisDeadLetterStore(intake.url, intake.stream, timeout=intake.timeout_seconds)
    if intake.backend == "nats":
        from receiver.deadletters.nats import NatsDeadLetterStore

        return NatsDeadLetterStore(
            intake.url,
            intake.stream,
            replicas=intake.replicas,
            timeout=intake.timeout_seconds,
        )
    return SqliteDeadLetterStore(settings.dead_letters.path)
