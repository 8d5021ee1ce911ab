"""The NATS JetStream intake: one work-queue stream, partitions as subjects, shared by replicas.

``append`` publishes to ``<stream>.p.<partition>`` with ``Nats-Msg-Id`` = the event id and
returns once JetStream acknowledged it (file storage, ``replicas`` copies); a PubAck flagged
``duplicate`` means the event was stored already, by this or another replica, within the
stream's duplicate window. That window must cover the replay window: with
``dedup_window_seconds = 0`` it is derived (:mod:`receiver.intake.nats_stream`). A server
forgets the ids of acked events when it restarts, so each stored id also gets a replay
marker that outlives it (:mod:`receiver.intake.nats_replay`), checked before the publish;
a copy arriving while the first is being stored waits for its outcome. The stream holds at
most ``max_pending`` events (discard new): beyond that append raises IntakeFull.

Each partition has one durable pull consumer (explicit acks, ``ack_wait``, at most
``max_ack_pending`` in hand), read only by the replica holding the partition's lease, a key
of the ``<stream>_leases`` key-value bucket whose TTL is the lease TTL (see
:mod:`receiver.intake.partitions`). A replica taking a partition over deletes and recreates
its consumer: as the stream is a work queue, the new consumer starts at the oldest event
not yet acked, so what the previous owner had in hand comes first, in stream order, and
newer events after it. Events in hand are kept from redelivery with progress acks. An
ack retried after a partial failure counts each event once; a message whose headers do
not read back is handed out as a record with a ``defect``, for the pipeline to dead-letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import nats
import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from receiver.intake.base import (
    CoroutineIntake,
    IntakeFull,
    IntakeRecord,
    IntakeUnavailable,
)
from receiver.intake.in_progress import AppendsInProgress
from receiver.intake.nats_leases import NatsLeases, open_lease_bucket
from receiver.intake.nats_stream import IntakeStream
from receiver.intake.partitions import (
    PartitionLeases,
    default_replica_id,
    partition_of,
    poll_seconds,
)
from receiver.tasks import stop_task

log = logging.getLogger("receiver.intake.nats")

_ERRORS = (nats.errors.Error, asyncio.TimeoutError, OSError)
_ROOM, _AT = "Receiver-Room", "Receiver-At"


@dataclass(eq=False)
class _Part:
    """One partition held by this replica: its puller and the messages in hand."""

    partition: int
    in_hand: dict[int, Any] = field(default_factory=dict)
    taken: int = 0
    space: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    stopping: bool = False


def _ref(record: IntakeRecord) -> tuple[_Part, int, Any]:
    ref: Any = record.ref
    assert isinstance(ref[0], _Part)
    return ref[0], ref[1], ref[2]


class NatsIntake(CoroutineIntake):
    """Durable queue on a JetStream work-queue stream; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        partitions: int,
        max_pending: int,
        replicas: int = 1,
        replica_id: str = "",
        lease_ttl: float = 10.0,
        ack_wait: float = 30.0,
        dedup_window: float = 0.0,
        max_ack_pending: int = 1000,
        timeout: float = 5.0,
    ) -> None:
        self._url = url
        self._stream = stream
        self._partitions = partitions
        self._max_pending = max_pending
        self._replicas = replicas
        self.replica_id = replica_id or default_replica_id()
        self._ttl = lease_ttl
        self._poll = poll_seconds(lease_ttl)
        self._ack_wait = ack_wait
        self._dedup_window = dedup_window
        self._max_ack_pending = max_ack_pending
        self._timeout = timeout
        self._nc: Any = None
        self._js: Any = None
        self._setup: IntakeStream | None = None
        self._appending = AppendsInProgress()
        self._parts: dict[int, _Part] = {}
        self._stopped: list[_Part] = []
        self._queue: asyncio.Queue[tuple[_Part, IntakeRecord]] = asyncio.Queue()
        self._progress: asyncio.Task[None] | None = None
        self.leases: PartitionLeases | None = None
        self._depth = 0
        self._oldest: float | None = None

    def subject(self, partition: int) -> str:
        """The subject of one partition."""
        return f"{self._stream}.p.{partition}"

    def consumer(self, partition: int) -> str:
        """The durable consumer of one partition."""
        return f"{self._stream}_p{partition}"

    async def start(self) -> None:
        """Connect, create or update the stream and the lease bucket, start the leases."""
        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    self._url,
                    name=f"receiver-intake-{self.replica_id}",
                    connect_timeout=max(1, math.ceil(self._timeout)),
                    reconnect_time_wait=1,
                    max_reconnect_attempts=-1,
                    pending_size=0,  # fail while reconnecting rather than publish late
                ),
                self._timeout * 2,
            )
            self._js = self._nc.jetstream(timeout=self._timeout)
            self._setup = IntakeStream(
                self._js, self._stream, replicas=self._replicas,
                max_pending=self._max_pending, dedup_window=self._dedup_window,
            )  # fmt: skip
            await self._setup.ensure()
            bucket = f"{self._stream}_leases"
            kv = await open_lease_bucket(self._js, bucket, self._ttl, self._replicas)
            await self.refresh_stats()
        except _ERRORS as error:
            if self._nc is not None:
                await self._nc.close()
            raise IntakeUnavailable(f"nats intake: {error!r}") from None
        self.leases = PartitionLeases(
            NatsLeases(self._js, kv, f"{self._stream}_leases", self.replica_id),
            partitions=self._partitions,
            ttl=self._ttl,
            replica_id=self.replica_id,
            drain_seconds=self._ack_wait,
            on_acquired=self._acquired,
            on_lost=self._lost,
            in_hand=lambda p: part.taken if (part := self._parts.get(p)) else 0,
        )
        self.leases.start()
        self._progress = asyncio.get_running_loop().create_task(self._keep_in_progress())

    async def close(self) -> None:
        """Release the leases (the partitions move on at once) and disconnect.

        Each step is bounded: a broker that stopped answering must not stall a shutdown
        (unreleased leases then expire on their own).
        """
        if self.leases is not None:
            with contextlib.suppress(TimeoutError, *_ERRORS):
                await asyncio.wait_for(self.leases.close(), self._timeout)
        await stop_task(self._progress)
        for part in [*self._parts.values(), *self._stopped]:
            await self._stop_puller(part)
        self._parts.clear()
        self._stopped.clear()
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(TimeoutError, *_ERRORS):
                await asyncio.wait_for(self._nc.close(), self._timeout)

    async def store(
        self, event_id: str, room_id: str, received_at: float, payload: bytes, replay_until: float
    ) -> bool:
        setup = self._setup
        if self._js is None or setup is None:
            raise IntakeUnavailable("the nats intake is not started")
        try:
            await setup.cover(replay_until - time.time())
        except _ERRORS as error:
            raise IntakeUnavailable(f"duplicate window not widened: {error!r}") from None
        markers = setup.markers
        partition = partition_of(room_id, self._partitions)
        headers = {"Nats-Msg-Id": event_id, _ROOM: quote(room_id), _AT: repr(received_at)}

        async def store() -> bool:
            try:
                if await markers.seen(event_id):
                    return False
                ack = await self._js.publish(
                    self.subject(partition), payload, timeout=self._timeout, headers=headers
                )
                await markers.mark(event_id)  # stored, or found stored: either way marked
            except nats.js.errors.APIError as error:
                if "maximum messages" in str(error.description):
                    raise IntakeFull(f"{self._max_pending} events pending") from None
                raise IntakeUnavailable(f"nats intake append failed: {error!r}") from None
            except _ERRORS as error:
                raise IntakeUnavailable(f"nats intake append failed: {error!r}") from None
            if ack.duplicate:
                return False
            self._depth += 1
            if self._oldest is None:
                self._oldest = received_at
            return True

        return await self._appending.once(event_id, store)

    async def _acquired(self, partition: int) -> None:
        name = self.consumer(partition)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._js.delete_consumer(self._stream, name)
        await self._js.add_consumer(
            self._stream,
            ConsumerConfig(
                durable_name=name,
                filter_subject=self.subject(partition),
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self._ack_wait,
                max_ack_pending=self._max_ack_pending,
                max_deliver=-1,
            ),
        )
        self._stopped = [p for p in self._stopped if p.task is not None and not p.task.done()]
        part = _Part(partition)
        part.task = asyncio.get_running_loop().create_task(self._pull(part))
        self._parts[partition] = part

    def _lost(self, partition: int) -> None:
        part = self._parts.pop(partition, None)
        if part is not None and part.task is not None:
            part.stopping = True
            part.task.cancel()
            self._stopped.append(part)

    async def _stop_puller(self, part: _Part) -> None:
        # nats-py turns a cancellation that meets a closed connection into an ordinary
        # error, which the puller would retry: the flag ends its loop whatever happens.
        part.stopping = True
        if part.task is not None:
            part.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(part.task, self._timeout + 2)

    async def _pull(self, part: _Part) -> None:
        sub = await self._js.pull_subscribe_bind(
            durable=self.consumer(part.partition), stream=self._stream
        )
        try:
            while not part.stopping:
                leases = self.leases
                room = self._max_ack_pending - len(part.in_hand)
                if leases is None or not leases.usable(part.partition) or room <= 0:
                    part.space.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await part.space.wait()
                    continue
                try:
                    messages = await sub.fetch(min(room, 256), timeout=self._poll)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue  # nothing new
                except _ERRORS as error:
                    log.warning("partition %d fetch failed: %r", part.partition, error)
                    await asyncio.sleep(1.0)
                    continue
                for message in messages:
                    try:
                        self._hold(part, message)
                    except Exception as error:  # one message must not end the puller
                        log.error("unreadable intake message: %r", error)
        finally:
            with contextlib.suppress(TimeoutError, *_ERRORS):
                await asyncio.wait_for(sub.unsubscribe(), self._timeout)

    def _hold(self, part: _Part, message: Any) -> None:
        seq = int(message.metadata.sequence.stream)
        if seq in part.in_hand:
            return  # redelivered while still in hand: it is handed out once
        part.in_hand[seq] = message
        headers = message.headers or {}
        event_id, room = headers.get("Nats-Msg-Id", ""), headers.get(_ROOM, "")
        try:
            record = IntakeRecord(
                (part, seq, message), event_id, unquote(room, errors="strict"),
                float(headers.get(_AT, "0")), message.data,
            )  # fmt: skip
        except ValueError as error:  # UnicodeDecodeError is a ValueError
            log.error("malformed intake message", extra={"seq": seq, "error": repr(error)})
            ref = (part, seq, message)
            record = IntakeRecord(ref, event_id, room, 0.0, message.data, defect=repr(error))
        self._queue.put_nowait((part, record))

    async def take(self, limit: int, wait_seconds: float) -> list[IntakeRecord]:
        records: list[IntakeRecord] = []
        deadline = time.monotonic() + wait_seconds
        while len(records) < limit:
            try:
                part, record = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if records or remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        part, record = await self._queue.get()
                except TimeoutError:
                    break
            current = self._parts.get(part.partition) is part
            if not current or self.leases is None or not self.leases.usable(part.partition):
                part.in_hand.pop(_ref(record)[1], None)
                continue  # the partition moved on: its next owner delivers it
            part.taken += 1
            records.append(record)
        return records

    def holds(self, record: IntakeRecord) -> bool:
        """Whether the record's partition is still held, by the puller that fetched it."""
        part, seq, _ = _ref(record)
        leases = self.leases
        current = self._parts.get(part.partition) is part and seq in part.in_hand
        return current and leases is not None and leases.held(part.partition)

    def drop(self, records: Sequence[IntakeRecord]) -> None:
        """Forget records no longer held, unacked: the partition's next owner delivers them."""
        for record in records:
            part, seq, _ = _ref(record)
            if part.in_hand.pop(seq, None) is not None:
                part.taken -= 1
                part.space.set()

    async def ack(self, record: IntakeRecord) -> None:
        part, seq, message = _ref(record)
        if seq not in part.in_hand:
            return  # acked already (by an earlier try of this batch) or dropped
        try:
            if self._parts.get(part.partition) is part:
                await message.ack_sync(timeout=self._timeout)
            else:  # the partition moved on; its consumer may be new: no reply to wait for
                with contextlib.suppress(*_ERRORS):
                    await message.ack()
        except nats.errors.MsgAlreadyAckdError:
            pass  # the server has it: done
        except _ERRORS as error:
            if self._parts.get(part.partition) is part:
                raise IntakeUnavailable(f"nats intake ack failed: {error!r}") from None
        if part.in_hand.pop(seq, None) is not None:
            part.taken -= 1
            part.space.set()
        self._depth = max(0, self._depth - 1)

    async def _keep_in_progress(self) -> None:
        while True:
            await asyncio.sleep(self._ack_wait / 3)
            for part in list(self._parts.values()):
                for message in list(part.in_hand.values()):
                    with contextlib.suppress(Exception):
                        await message.in_progress()

    async def refresh_stats(self) -> None:
        """Read the stream's message count and the oldest event's receive time."""
        info = await self._js.stream_info(self._stream)
        self._depth = int(info.state.messages)
        self._oldest = None
        if self._depth:
            with contextlib.suppress(*_ERRORS):
                first = await self._js.get_msg(self._stream, seq=info.state.first_seq)
                with contextlib.suppress(ValueError):
                    self._oldest = float((first.headers or {}).get(_AT, "0")) or None

    def depth(self) -> int:
        return self._depth

    def oldest_age(self, now: float) -> float:
        return max(0.0, now - self._oldest) if self._oldest is not None and self._depth else 0.0

    def is_ready(self) -> bool:
        leases_ok = self.leases is not None and self.leases.healthy
        return self._nc is not None and bool(self._nc.is_connected) and leases_ok
