"""The journal as a JetStream stream ``<stream>_journal`` with limits (count, bytes, age).

Written with core NATS publishes (the stream stores them; nothing waits for an ack) and a
flush per batch (none while the connection is down: the client would hold them and send
them twice); followed by an ordered consumer over the whole stream (which keeps only the
last ``max_seconds``), resumed after the last stream sequence it delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from receiver.journal.base import Journal, JournalLimits

FETCH_SECONDS = 1.0
DRAIN = 500


class NatsJournal(Journal):
    """Entries in one JetStream stream with limits retention."""

    def __init__(
        self,
        url: str,
        stream: str,
        limits: JournalLimits,
        replicas: int = 1,
        on_drop: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(limits, on_drop)
        self.name = f"{stream}_journal"
        self.subject = f"{self.name}.e"
        self._url = url
        self._replicas = replicas
        self._nc: Any = None
        self._js: Any = None
        self._last_seq: int | None = None
        self._opening = asyncio.Lock()

    async def _open(self) -> Any:
        async with self._opening:  # the flusher and the follower share one connection
            if self._js is None:
                nc = await self._connect()
                try:
                    await self._ensure_stream(nc.jetstream(timeout=5))
                except BaseException:
                    await nc.close()
                    raise
                self._nc, self._js = nc, nc.jetstream(timeout=5)
        return self._js

    async def _connect(self) -> Any:
        import nats

        return await nats.connect(
            self._url,
            name="receiver-journal",
            connect_timeout=5,
            reconnect_time_wait=1,
            max_reconnect_attempts=-1,
        )

    async def _ensure_stream(self, js: Any) -> None:
        import nats.js.errors
        from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

        config = StreamConfig(
            name=self.name,
            subjects=[self.subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=self._replicas,
            max_msgs=self.limits.max_entries,
            max_bytes=self.limits.max_bytes,
            max_age=self.limits.max_seconds,
            discard=DiscardPolicy.OLD,
        )
        try:
            await js.stream_info(self.name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)

    async def _flush(self, batch: list[bytes]) -> None:
        await self._open()
        if not self._nc.is_connected:  # publishes would wait in the client, and repeat
            raise ConnectionError("the NATS connection is down")
        for entry in batch:
            await self._nc.publish(self.subject, entry)
        await self._nc.flush(timeout=5)

    async def _follow(self, since: float) -> AsyncIterator[list[bytes]]:
        import nats.errors
        from nats.js.api import ConsumerConfig, DeliverPolicy

        js = await self._open()
        # The stream keeps only ``max_seconds``: all of it is what a start time would give.
        # Never a start time: the client rebuilds an ordered consumer after a reconnect by
        # start sequence, which the server refuses next to a start time.
        config = (
            ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
            if self._last_seq is None
            else ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self._last_seq + 1
            )
        )
        subscription = await js.subscribe(self.subject, ordered_consumer=True, config=config)
        try:
            while True:
                try:
                    message = await subscription.next_msg(timeout=FETCH_SECONDS)
                except nats.errors.TimeoutError:
                    continue
                batch = [message]
                while len(batch) < DRAIN and subscription.pending_msgs:
                    batch.append(await subscription.next_msg(timeout=FETCH_SECONDS))
                self._last_seq = batch[-1].metadata.sequence.stream
                yield [item.data for item in batch if item.data]
        finally:
            with contextlib.suppress(Exception):  # the connection is gone with it
                await subscription.unsubscribe()

    async def _release(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()
