"""Print envelopes to standard output, one JSON document per line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from receiver.sink_settings import StdoutSinkSettings
from receiver.sinks.base import Delivery, Sink


class StdoutSink(Sink):
    """For trials and for log collectors that read a container's output."""

    lanes = 1

    def __init__(self, settings: StdoutSinkSettings) -> None:
        super().__init__(settings.name, critical=settings.critical)

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        await self.publish_batch([(envelope, body)])

    async def publish_batch(self, batch: Sequence[Delivery]) -> list[BaseException | None]:
        sys.stdout.buffer.write(b"".join(body + b"\n" for _, body in batch))
        sys.stdout.buffer.flush()
        return [None] * len(batch)
