"""The NATS intake's work-queue stream, its duplicate window and the replay markers with it.

The stream's duplicate window must cover every event's replay window: with
``dedup_window_seconds = 0`` it is derived (241 s with the default
``auth.tolerance_seconds``) and widened, to the minute, to any longer replay window an
append carries; the replay markers' bucket keeps the same TTL.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import nats.js.errors
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from receiver.intake.nats_replay import ReplayMarkers

log = logging.getLogger("receiver.intake.nats")

DERIVED_WINDOW_SECONDS = 241.0


class IntakeStream:
    """Creates or updates the stream and keeps its duplicate window wide enough."""

    def __init__(
        self, js: Any, name: str, *, replicas: int, max_pending: int, dedup_window: float
    ) -> None:
        self._js = js
        self._name = name
        self._replicas = replicas
        self._max_pending = max_pending
        self._fixed_window = dedup_window
        self.window = dedup_window or DERIVED_WINDOW_SECONDS
        self.markers = ReplayMarkers(js, f"{name}_seen", replicas)
        self._config: StreamConfig | None = None
        self._widening = asyncio.Lock()

    async def ensure(self) -> None:
        """Create the stream (or update it to these settings) and the markers' bucket."""
        try:
            existing = await self._js.stream_info(self._name)
        except nats.js.errors.NotFoundError:
            existing = None
        if existing is not None and not self._fixed_window:
            current = float(existing.config.duplicate_window or 0)
            self.window = max(self.window, current)
        self._config = StreamConfig(
            name=self._name,
            subjects=[f"{self._name}.p.*"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=self._replicas,
            duplicate_window=self.window,
            max_msgs=self._max_pending,
            discard=DiscardPolicy.NEW,
        )
        if existing is None:
            await self._js.add_stream(self._config)
        else:
            await self._js.update_stream(self._config)
        await self.markers.open(self.window)

    async def cover(self, needed: float) -> None:
        """Widen the duplicate window (and the markers' TTL) to ``needed`` seconds."""
        if self._fixed_window or needed <= self.window:
            return
        async with self._widening:
            if needed <= self.window or self._config is None:
                return
            window = float(math.ceil(needed / 60) * 60)
            self._config.duplicate_window = window
            await self._js.update_stream(self._config)
            await self.markers.widen(window)
            self.window = window
            log.info("intake duplicate window widened to %.0f s", window)
