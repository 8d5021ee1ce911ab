"""The journal as a Redis stream ``<stream>:journal``, trimmed to ``max_entries``.

Written with ``XADD ... MAXLEN`` in pipelined batches and trimmed by age (``XTRIM MINID
~``) at each batch; followed with a blocking ``XREAD`` on a connection of its own, from
the last entry id it yielded. ``max_bytes`` is not enforced by Redis: entries are at most
``MAX_ENTRY_BYTES`` each (the console's history holds to ``max_bytes`` in memory).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from receiver.journal.base import Journal, JournalLimits

log = logging.getLogger("receiver.journal")

READ_COUNT = 500
BLOCK_MS = 1000


class RedisJournal(Journal):
    """Entries in one Redis stream, bounded by count and age."""

    def __init__(
        self,
        url: str,
        prefix: str,
        limits: JournalLimits,
        on_drop: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(limits, on_drop)
        self.key = f"{prefix}:journal"
        self._url = url
        self._writer: Any = None
        self._reader: Any = None
        self._position: bytes | str | None = None

    def _client(self, timeout: float) -> Any:
        import redis.asyncio as aioredis

        return aioredis.from_url(self._url, socket_timeout=timeout, socket_connect_timeout=5)

    async def _flush(self, batch: list[bytes]) -> None:
        if self._writer is None:
            self._writer = self._client(10)
        pipe = self._writer.pipeline(transaction=False)
        for entry in batch:
            pipe.xadd(self.key, {"e": entry}, maxlen=self.limits.max_entries, approximate=False)
        await pipe.execute()
        oldest_ms = int((time.time() - self.limits.max_seconds) * 1000)
        try:  # apart from the adds: a failed trim must not make the batch be added again
            await self._writer.xtrim(self.key, minid=f"{oldest_ms}-0", approximate=True)
        except Exception as error:
            log.debug("journal trim by age failed", extra={"error": repr(error)})

    async def _follow(self, since: float) -> AsyncIterator[list[bytes]]:
        if self._reader is None:
            self._reader = self._client(BLOCK_MS / 1000 + 10)
        position = self._position or f"{int(since * 1000)}-0"
        while True:
            answer = await self._reader.xread(
                {self.key: position}, count=READ_COUNT, block=BLOCK_MS
            )
            for _key, messages in answer or ():
                if messages:
                    position = self._position = messages[-1][0]
                    yield [fields[b"e"] for _id, fields in messages if b"e" in fields]

    async def _release(self) -> None:
        for client in (self._writer, self._reader):
            if client is not None:
                await client.aclose()
        self._writer = self._reader = None
