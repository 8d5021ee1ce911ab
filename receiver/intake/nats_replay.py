"""Replay markers of the NATS intake: a key-value bucket that outlives a server restart.

``Nats-Msg-Id`` deduplication alone does not cover the replay window: a JetStream server
rebuilds its duplicate window on restart from the messages still stored, and the intake's
work-queue stream removes a message once acked, so the ids of events already delivered
are forgotten and a replay sent after a restart would be stored again. The bucket
``<stream>_seen`` keeps one key per stored event id for as long as the duplicate window
(its TTL, widened with it). A marker is written once the event is stored (or found stored
by the PubAck): a crash before it leaves the event stored without a marker, which the
duplicate window still covers until a restart, never a marker without its event.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import nats.js.errors

_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")


def marker_key(event_id: str) -> str:
    """The bucket key of an event id (hashed unless it is already a safe key)."""
    if _KEY.fullmatch(event_id):
        return event_id
    return "h-" + hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()


class ReplayMarkers:
    """The event ids stored within the duplicate window, in a bucket with that TTL."""

    def __init__(self, js: Any, bucket: str, replicas: int) -> None:
        self._js = js
        self.bucket = bucket
        self._replicas = replicas
        self._kv: Any = None

    async def open(self, window: float) -> None:
        """Create the bucket, or set an existing one's TTL to ``window``."""
        try:
            self._kv = await self._js.create_key_value(
                bucket=self.bucket, history=1, ttl=window, replicas=self._replicas
            )
        except nats.js.errors.BadRequestError:  # exists with another TTL
            self._kv = await self._js.key_value(self.bucket)
            await self.widen(window)

    async def widen(self, window: float) -> None:
        """Keep markers for ``window`` seconds from now on."""
        info = await self._js.stream_info(f"KV_{self.bucket}")
        config = info.config
        config.max_age = window
        await self._js.update_stream(config)

    async def seen(self, event_id: str) -> bool:
        """Whether a marker of ``event_id`` is there."""
        try:
            await self._kv.get(marker_key(event_id))
        except nats.js.errors.KeyNotFoundError:
            return False
        return True

    async def mark(self, event_id: str) -> None:
        """Write the marker of a stored ``event_id``."""
        await self._kv.put(marker_key(event_id), b"1")
