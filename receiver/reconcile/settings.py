"""The ``reconcile`` settings section."""

from __future__ import annotations

from pydantic import Field

from receiver.section import Section


class ReconcileSettings(Section):
    """How the job watcher lists the tenant's jobs and when it emits."""

    enabled: bool = False
    interval_seconds: float = Field(default=30.0, gt=0)
    # Jobs updated this long before the watermark are listed again (clock skew, late pages).
    overlap_seconds: float = Field(default=60.0, ge=0)
    emit_on_first_run: bool = False
    page_size: int = Field(default=100, ge=1, le=100)
    max_pages: int = Field(default=20, ge=1)
    # How long the intake drops a second emission of the same (job, state, update time).
    replay_seconds: float = Field(default=86400.0, gt=0)
    # A PROCESSING job without any callback accepted for this long is reported (once).
    silent_after_seconds: float = Field(default=300.0, gt=0)
    # Jobs whose accepted callbacks are remembered, at most (each of: listed, not listed).
    max_callback_jobs: int = Field(default=10_000, ge=1)
    # A job's callback record is forgotten this long after it ended or had no news.
    forget_after_seconds: float = Field(default=86400.0, gt=0)
