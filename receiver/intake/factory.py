"""Build the intake backend named in the settings."""

from __future__ import annotations

from receiver.config import IntakeSettings
from receiver.intake.base import Intake
from receiver.intake.sqlite import SqliteIntake


def build_intake(settings: IntakeSettings) -> Intake:
    """The configured intake backend (not yet started)."""
    if settings.backend == "sqlite":
        return SqliteIntake(
            settings.path,
            max_pending=settings.max_pending,
            fsync=settings.fsync,
            batch_max=settings.batch_max,
        )
    raise ValueError(f"intake.backend {settings.backend!r} is not available in this build")
