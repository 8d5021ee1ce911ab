"""Build the intake backend named in the settings."""

from __future__ import annotations

from receiver.config import IntakeSettings
from receiver.intake.base import Intake
from receiver.intake.sqlite import SqliteIntake


def build_intake(settings: IntakeSettings) -> Intake:
    """The configured intake backend (not yet started).

    ``nats`` and ``redis`` import their client library only when chosen.
    """
    if settings.backend == "sqlite":
        return SqliteIntake(
            settings.path,
            max_pending=settings.max_pending,
            fsync=settings.fsync,
            batch_max=settings.batch_max,
        )
    if settings.backend == "nats":
        from receiver.intake.nats import NatsIntake

        return NatsIntake(
            settings.url,
            stream=settings.stream,
            partitions=settings.partitions,
            max_pending=settings.max_pending,
            replicas=settings.replicas,
            replica_id=settings.replica_id,
            lease_ttl=settings.lease_ttl_seconds,
            ack_wait=settings.ack_wait_seconds,
            dedup_window=settings.dedup_window_seconds,
            max_ack_pending=settings.max_ack_pending,
            timeout=settings.timeout_seconds,
        )
    if settings.backend == "redis":
        from receiver.intake.redis import RedisIntake

        return RedisIntake(
            settings.url,
            stream=settings.stream,
            partitions=settings.partitions,
            max_pending=settings.max_pending,
            replicas=settings.replicas,
            replica_id=settings.replica_id,
            lease_ttl=settings.lease_ttl_seconds,
            drain_seconds=settings.ack_wait_seconds,
            timeout=settings.timeout_seconds,
        )
    raise ValueError(f"intake.backend {settings.backend!r} is not available in this build")
