"""The Redis Streams intake: one stream per partition, one consumer group, shared by replicas.

``append`` runs one script: unless the replay marker ``<stream>:seen:<event id>`` exists,
it ``XADD``s the event to the stream of its partition (``<stream>:p:<n>``) and sets the
marker with a TTL that ends with the event's replay window. A script runs whole or not at
all, so a replica killed mid-append leaves neither a marker without its entry (a replay
answered ``duplicate`` for an event never stored) nor an entry without its marker; a
marker present means the event is stored already, by this or another replica. A copy
arriving in this process while the first is being stored waits for its outcome (see
:mod:`receiver.intake.in_progress`). With ``replicas`` > 1 the append also waits
(``WAIT``) until that many Redis servers have the entry.

Partitions are consumed by the replica holding their lease (``<stream>:lease:<n>``, see
:mod:`receiver.intake.partitions`). A replica that takes a partition over first claims every
entry still pending in the group (``XAUTOCLAIM``, in entry order; the lease guarantees the
previous owner stopped reading), deletes the group's idle consumers left with nothing
pending (those of replicas gone) and hands the claimed entries out before reading new ones
(``>``), so a room's events stay in order. ``ack`` removes entries (``XACK`` + ``XDEL``);
an ack retried after a partial failure counts each entry once. An entry that cannot be read
back is handed out as a record with a ``defect``, for the pipeline to dead-letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from receiver.intake.base import (
    CoroutineIntake,
    IntakeFull,
    IntakeRecord,
    IntakeUnavailable,
)
from receiver.intake.in_progress import AppendsInProgress
from receiver.intake.partitions import (
    PartitionLeases,
    default_replica_id,
    partition_of,
    poll_seconds,
)
from receiver.intake.redis_leases import RedisLeases

log = logging.getLogger("receiver.intake.redis")

GROUP = "receiver"
_ERRORS = (redis.exceptions.RedisError, OSError, asyncio.TimeoutError)
# KEYS: marker, stream; ARGV: marker TTL in ms (0: no marker), then the entry's fields.
# XADD comes first: a failing XADD aborts the script before anything was written.
_APPEND = """
local ttl = tonumber(ARGV[1])
if ttl > 0 and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
if ttl > 0 then redis.call('SET', KEYS[1], '1', 'PX', ttl) end
return 1
"""


@dataclass(eq=False)
class _Tenure:
    """One holding of a partition by this replica, from its lease's acquisition to its loss."""

    partition: int
    ready: deque[IntakeRecord] = field(default_factory=deque)
    in_hand: set[Any] = field(default_factory=set)  # entry ids handed out, not acked/dropped
    claimed: bool = False
    claim_from: Any = "0-0"  # where the takeover's claim goes on after a failed round


def _ref(record: IntakeRecord) -> tuple[_Tenure, Any]:
    ref: Any = record.ref
    assert isinstance(ref[0], _Tenure)
    return ref[0], ref[1]


def entry_record(tenure: _Tenure, entry_id: Any, fields: dict[bytes, bytes]) -> IntakeRecord:
    """The record of one stream entry; a malformed one carries its ``defect``."""
    try:
        return IntakeRecord(
            (tenure, entry_id),
            fields[b"id"].decode(),
            fields[b"room"].decode(),
            float(fields[b"at"]),
            fields[b"data"],
        )
    except (KeyError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        log.error(
            "malformed intake entry", extra={"partition": tenure.partition, "error": repr(error)}
        )
        event_id = fields.get(b"id", b"").decode("utf-8", "replace")
        room = fields.get(b"room", b"").decode("utf-8", "replace")
        data = fields.get(b"data", b"")
        return IntakeRecord((tenure, entry_id), event_id, room, 0.0, data, defect=repr(error))


class RedisIntake(CoroutineIntake):
    """Durable queue on Redis Streams, shared by every replica; see the module docstring."""

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
        drain_seconds: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self._url = url
        self._stream = stream
        self._partitions = partitions
        self._max_pending = max_pending
        self._replicas = replicas
        self.replica_id = replica_id or default_replica_id()
        self._timeout = timeout
        self._client: aioredis.Redis | None = None
        self._append_script: Any = None
        self._ttl = lease_ttl
        self._poll = poll_seconds(lease_ttl)
        self._drain_seconds = drain_seconds
        self.leases: PartitionLeases | None = None
        self._tenures: dict[int, _Tenure] = {}
        self._appending = AppendsInProgress()
        self._depth = 0
        self._oldest: float | None = None
        self._healthy = False

    def stream_key(self, partition: int) -> str:
        """The Redis stream holding one partition's events."""
        return f"{self._stream}:p:{partition}"

    def seen_key(self, event_id: str) -> str:
        """The replay marker of one event id."""
        return f"{self._stream}:seen:{event_id}"

    def in_hand(self, partition: int) -> int:
        """Records of ``partition`` handed out and neither acked nor dropped."""
        tenure = self._tenures.get(partition)
        return len(tenure.in_hand) if tenure is not None else 0

    async def start(self) -> None:
        """Connect, create the consumer groups and start keeping this replica's leases."""
        self._client = aioredis.from_url(
            self._url,
            socket_timeout=self._timeout + 2,
            socket_connect_timeout=self._timeout,
            health_check_interval=10,
        )
        self._append_script = self._client.register_script(_APPEND)
        try:
            for partition in range(self._partitions):
                with contextlib.suppress(redis.exceptions.ResponseError):  # BUSYGROUP
                    await self._client.xgroup_create(
                        self.stream_key(partition), GROUP, id="0", mkstream=True
                    )
            await self.refresh_stats()
        except _ERRORS as error:
            await self._client.aclose()
            raise IntakeUnavailable(f"redis intake: {error!r}") from None
        self._healthy = True
        store = RedisLeases(self._client, self._stream, self.replica_id, self._ttl)
        self.leases = PartitionLeases(
            store,
            partitions=self._partitions,
            ttl=self._ttl,
            replica_id=self.replica_id,
            drain_seconds=self._drain_seconds,
            on_acquired=self._acquired,
            on_lost=self._lost,
            in_hand=self.in_hand,
        )
        self.leases.start()

    async def close(self) -> None:
        """Release the leases (the partitions move on at once) and disconnect."""
        if self.leases is not None:
            await self.leases.close()
        if self._client is not None:
            with contextlib.suppress(*_ERRORS):
                await self._client.aclose()
            self._client = None

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise IntakeUnavailable("the redis intake is not started")
        return self._client

    async def _acquired(self, partition: int) -> None:
        self._tenures[partition] = _Tenure(partition)

    def _lost(self, partition: int) -> None:
        self._tenures.pop(partition, None)

    async def store(
        self, event_id: str, room_id: str, received_at: float, payload: bytes, replay_until: float
    ) -> bool:
        client = self._redis()
        if self._depth >= self._max_pending:
            await self.refresh_stats()
            if self._depth >= self._max_pending:
                raise IntakeFull(f"{self._max_pending} events pending")

        async def store() -> bool:
            ttl_ms = max(0, int((replay_until - time.time()) * 1000))
            stream = self.stream_key(partition_of(room_id, self._partitions))
            fields = [b"id", event_id, b"room", room_id, b"at", repr(received_at), b"data", payload]
            try:
                added = await self._append_script(
                    keys=[self.seen_key(event_id), stream], args=[ttl_ms, *fields]
                )
            except _ERRORS as error:
                self._healthy = False
                raise IntakeUnavailable(f"redis intake append failed: {error!r}") from None
            self._healthy = True
            if added:
                self._depth += 1
                if self._oldest is None:
                    self._oldest = received_at
            if self._replicas > 1:  # a duplicate too: its first copy's WAIT may have failed
                await self._wait_for_replicas(client)
            return bool(added)

        return await self._appending.once(event_id, store)

    async def _wait_for_replicas(self, client: aioredis.Redis) -> None:
        try:
            copies = int(await client.wait(self._replicas - 1, int(self._timeout * 1000)))
        except _ERRORS as error:
            raise IntakeUnavailable(f"redis WAIT failed: {error!r}") from None
        if copies < self._replicas - 1:
            raise IntakeUnavailable(f"only {copies} of {self._replicas - 1} redis replicas")

    async def take(self, limit: int, wait_seconds: float) -> list[IntakeRecord]:
        leases = self.leases
        if leases is None:
            return []
        owned = leases.owned()
        try:
            for partition in owned:
                tenure = self._tenures.get(partition)
                if tenure is not None and not tenure.claimed:
                    await self._claim(tenure)
            records = self._pop_ready(owned, limit)
            if records:
                return records
            reading = [p for p in leases.owned() if p in self._tenures]
            reading = [p for p in reading if not self._tenures[p].ready]
            if not reading:
                await self._idle(wait_seconds)
                return []
            await self._read(reading, limit, min(wait_seconds, self._poll))
        except _ERRORS as error:
            self._healthy = False
            raise IntakeUnavailable(f"redis intake read failed: {error!r}") from None
        return self._pop_ready(leases.owned(), limit)

    async def _idle(self, wait_seconds: float) -> None:
        assert self.leases is not None
        self.leases.changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_seconds):
                await self.leases.changed.wait()

    async def _claim(self, tenure: _Tenure) -> None:
        """Everything still pending in the partition (a previous owner's), in entry order."""
        client, stream = self._redis(), self.stream_key(tenure.partition)
        while True:
            start = tenure.claim_from
            reply = await client.xautoclaim(stream, GROUP, self.replica_id, 0, start, count=500)
            tenure.claim_from, entries = reply[0], reply[1]
            self._queue(tenure, entries)
            if tenure.claim_from in (b"0-0", "0-0"):
                break
        tenure.claimed = True
        await self._forget_idle_consumers(stream)

    async def _forget_idle_consumers(self, stream: str) -> None:
        """Delete the group's consumers with nothing pending and idle beyond the lease TTL.

        Each start of a replica is a new consumer name: without this, the consumers of
        replicas gone would pile up for good. Only the lease holder reads a partition, and
        this replica holds it now, so none of them can take an entry meanwhile.
        """
        client = self._redis()
        for consumer in await client.xinfo_consumers(stream, GROUP):
            name = consumer["name"]
            name = name.decode() if isinstance(name, bytes) else str(name)
            idle_ms = int(consumer["idle"])
            if name == self.replica_id or consumer["pending"] or idle_ms < self._ttl * 1000:
                continue
            await client.xgroup_delconsumer(stream, GROUP, name)
            log.info("idle consumer %s of %s deleted", name, stream)

    async def _read(self, partitions: list[int], limit: int, block_seconds: float) -> None:
        streams: Any = {self.stream_key(p): ">" for p in partitions}
        tenures = {self.stream_key(p): self._tenures[p] for p in partitions}
        block = int(block_seconds * 1000) or None
        # Bounded here too: a read whose reply never arrives must not stall the partition.
        async with asyncio.timeout(block_seconds + self._timeout + 2):
            reply: Any = await self._redis().xreadgroup(
                GROUP, self.replica_id, streams, count=max(1, limit), block=block
            )
        for name, entries in reply or []:
            tenure = tenures[name.decode() if isinstance(name, bytes) else str(name)]
            if self._tenures.get(tenure.partition) is tenure:
                self._queue(tenure, entries)  # else the next owner claims them

    def _queue(self, tenure: _Tenure, entries: list[Any]) -> None:
        for entry_id, fields in entries:
            if fields:  # else deleted meanwhile
                tenure.ready.append(entry_record(tenure, entry_id, fields))

    def _pop_ready(self, owned: list[int], limit: int) -> list[IntakeRecord]:
        records: list[IntakeRecord] = []
        for partition in owned:
            tenure = self._tenures.get(partition)
            while tenure is not None and tenure.ready and len(records) < limit:
                record = tenure.ready.popleft()
                tenure.in_hand.add(_ref(record)[1])
                records.append(record)
        return records

    def holds(self, record: IntakeRecord) -> bool:
        """Whether the record's partition is still held, in the tenure that handed it out."""
        tenure, entry_id = _ref(record)
        leases = self.leases
        return (
            self._tenures.get(tenure.partition) is tenure
            and entry_id in tenure.in_hand
            and leases is not None
            and leases.held(tenure.partition)
        )

    def drop(self, records: Sequence[IntakeRecord]) -> None:
        """Forget records no longer held: they stay pending for the partition's next owner."""
        for record in records:
            tenure, entry_id = _ref(record)
            tenure.in_hand.discard(entry_id)

    async def ack(self, record: IntakeRecord) -> None:
        await self.ack_many([record])

    async def ack_many(self, records: Sequence[IntakeRecord]) -> None:
        """``XACK`` + ``XDEL`` of every record in one transaction; each is counted once."""
        by_tenure: dict[_Tenure, list[Any]] = defaultdict(list)
        for record in records:
            tenure, entry_id = _ref(record)
            by_tenure[tenure].append(entry_id)
        try:
            async with self._redis().pipeline(transaction=True) as pipe:
                for tenure, entry_ids in by_tenure.items():
                    stream = self.stream_key(tenure.partition)
                    pipe.xack(stream, GROUP, *entry_ids)
                    pipe.xdel(stream, *entry_ids)
                await pipe.execute()
        except _ERRORS as error:
            self._healthy = False
            raise IntakeUnavailable(f"redis intake ack failed: {error!r}") from None
        for tenure, entry_ids in by_tenure.items():
            for entry_id in entry_ids:
                if entry_id in tenure.in_hand:  # not counted by an earlier try of this ack
                    tenure.in_hand.discard(entry_id)
                    self._depth = max(0, self._depth - 1)

    async def refresh_stats(self) -> None:
        """Sum the stream lengths; the oldest entry's receive time over the partitions."""
        client = self._redis()
        async with client.pipeline(transaction=False) as pipe:
            for partition in range(self._partitions):
                pipe.xlen(self.stream_key(partition))
                pipe.xrange(self.stream_key(partition), count=1)
            replies = await pipe.execute()
        self._depth = sum(int(n) for n in replies[0::2])
        firsts: list[float] = []
        for entries in replies[1::2]:
            with contextlib.suppress(KeyError, ValueError, IndexError):
                firsts.append(float(entries[0][1][b"at"]))
        self._oldest = min(firsts) if firsts else None
        self._healthy = True

    def depth(self) -> int:
        return self._depth

    def oldest_age(self, now: float) -> float:
        return max(0.0, now - self._oldest) if self._oldest is not None and self._depth else 0.0

    def is_ready(self) -> bool:
        leases_ok = self.leases is not None and self.leases.healthy
        return self._client is not None and self._healthy and leases_ok
