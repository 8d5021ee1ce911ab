"""Partition leases on a JetStream key-value bucket (see :mod:`receiver.intake.partitions`).

The bucket's TTL is the lease TTL: a key not rewritten within it disappears, so the lease
of a replica that died expires. A lease ``p.<n>`` is created only if absent and rewritten
only at the revision this replica wrote last, so two replicas never both hold it. Live
replicas are the ``hb.<replica>`` subjects holding a message (counted from the stream info,
so no consumer is made per round); a replica that stops purges its own.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import nats.js.errors

log = logging.getLogger("receiver.intake.nats")


async def open_lease_bucket(js: Any, bucket: str, ttl: float, replicas: int) -> Any:
    """The lease bucket, created with the lease TTL (an existing one is used as it is)."""
    try:
        return await js.create_key_value(bucket=bucket, history=1, ttl=ttl, replicas=replicas)
    except nats.js.errors.BadRequestError:
        log.warning("lease bucket %s exists with other settings; using it", bucket)
        return await js.key_value(bucket)


class NatsLeases:
    """Leases as keys of a KV bucket with a TTL, updated only at the revision last seen."""

    def __init__(self, js: Any, kv: Any, bucket: str, replica_id: str) -> None:
        self._js = js
        self._kv = kv
        self._bucket = bucket
        self._me = replica_id.encode()
        self._heartbeat_key = f"hb.{replica_id}"
        self._revisions: dict[int, int] = {}

    async def acquire(self, partition: int) -> bool:
        """Create ``p.<n>`` unless a live lease exists."""
        try:
            self._revisions[partition] = await self._kv.create(f"p.{partition}", self._me)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    async def renew(self, partition: int) -> bool:
        """Rewrite the lease at the revision we wrote last (fails if it expired or moved)."""
        last = self._revisions.get(partition)
        if last is None:
            return False
        try:
            self._revisions[partition] = await self._kv.update(f"p.{partition}", self._me, last)
        except nats.js.errors.KeyWrongLastSequenceError:
            self._revisions.pop(partition, None)
            return False
        return True

    async def release(self, partition: int) -> None:
        """Delete the lease if it is still at our revision."""
        last = self._revisions.pop(partition, None)
        if last is not None:
            with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                await self._kv.delete(f"p.{partition}", last=last)

    async def heartbeat(self) -> int:
        """Rewrite ``hb.<replica>``; live replicas are the ``hb.*`` keys not yet expired."""
        await self._kv.put(self._heartbeat_key, b"1")
        prefix = f"$KV.{self._bucket}.hb."
        info = await self._js.stream_info(f"KV_{self._bucket}", subjects_filter=f"{prefix}>")
        return len(info.state.subjects or {})

    async def leave(self) -> None:
        """Purge this replica's heartbeat key (no delete marker left to count)."""
        subject = f"$KV.{self._bucket}.{self._heartbeat_key}"
        await self._js.purge_stream(f"KV_{self._bucket}", subject=subject)
