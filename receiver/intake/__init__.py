"""Durable intake backends behind one interface."""

from receiver.intake.base import Intake, IntakeFull, IntakeRecord, IntakeUnavailable
from receiver.intake.factory import build_intake

__all__ = ["Intake", "IntakeFull", "IntakeRecord", "IntakeUnavailable", "build_intake"]
