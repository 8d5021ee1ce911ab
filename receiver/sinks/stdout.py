"""Print envelopes to standard output, one JSON document per line."""

from __future__ import annotations

import sys
from typing import Any

from receiver.sink_settings import StdoutSinkSettings
from receiver.sinks.base import Sink


class StdoutSink(Sink):
    """For trials and for log collectors that read a container's output."""

    def __init__(self, settings: StdoutSinkSettings) -> None:
        super().__init__(settings.name, critical=settings.critical)

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        sys.stdout.buffer.write(body + b"\n")
        sys.stdout.buffer.flush()
