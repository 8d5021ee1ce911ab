"""The watcher's state in the replicated intake's broker, so a new leader goes on where
the last one stopped: a Redis key, or a JetStream key-value bucket.

State and callback records are each one JSON document, compressed (zlib), replaced whole
at every save; only the leader saves (one watcher per deployment), so there is no writer
to race with. A document that does not decode is taken as empty (logged).
"""

from __future__ import annotations

import dataclasses
import logging
import zlib
from abc import ABC, abstractmethod
from typing import Any

import orjson

from receiver.reconcile.callbacks import MAX_JOB_ID_CHARS, JobCallbacks
from receiver.reconcile.state import SavedCallbacks, WatchState

log = logging.getLogger(__name__)

STATE, CALLBACKS = "state", "callbacks"
_FIELDS = {f.name for f in dataclasses.fields(JobCallbacks)}


def encode_state(state: WatchState) -> bytes:
    document = {"jobs": state.jobs, "watermark": state.watermark, "initialised": True}
    return zlib.compress(orjson.dumps(document))


def decode_state(blob: bytes | None) -> WatchState:
    document = _decoded(blob, STATE)
    jobs = document.get("jobs")
    if not isinstance(jobs, dict):
        return WatchState()
    kept = {
        str(job): (pair[0], pair[1])
        for job, pair in jobs.items()
        if isinstance(pair, list) and len(pair) == 2 and len(str(job)) <= MAX_JOB_ID_CHARS
    }
    watermark = document.get("watermark")
    return WatchState(
        kept,
        float(watermark) if isinstance(watermark, int | float) else None,
        bool(document.get("initialised")),
    )


def encode_callbacks(records: SavedCallbacks) -> bytes:
    document = {
        job: {"listed": listed, **dataclasses.asdict(entry)}
        for job, (listed, entry) in records.items()
    }
    return zlib.compress(orjson.dumps(document))


def decode_callbacks(blob: bytes | None) -> SavedCallbacks:
    saved: SavedCallbacks = {}
    for job, item in _decoded(blob, CALLBACKS).items():
        if not isinstance(item, dict) or len(job) > MAX_JOB_ID_CHARS:
            continue
        try:
            entry = JobCallbacks(**{k: v for k, v in item.items() if k in _FIELDS})
        except TypeError:
            continue
        saved[job] = (bool(item.get("listed")), entry)
    return saved


def _decoded(blob: bytes | None, what: str) -> dict[str, Any]:
    if not blob:
        return {}
    try:
        document = orjson.loads(zlib.decompress(blob))
    except (zlib.error, orjson.JSONDecodeError):
        log.warning("reconcile %s in the broker does not decode; starting afresh", what)
        return {}
    return document if isinstance(document, dict) else {}


class SharedStateStore(ABC):
    """A :class:`~receiver.reconcile.state.StateStore` over two blobs in a broker."""

    @abstractmethod
    async def _get(self, name: str) -> bytes | None:
        """The blob ``name``, or None."""

    @abstractmethod
    async def _put(self, name: str, blob: bytes) -> None:
        """Replace the blob ``name``."""

    async def close(self) -> None:
        """Release the connection."""

    async def load(self) -> WatchState:
        return decode_state(await self._get(STATE))

    async def save(self, state: WatchState) -> None:
        await self._put(STATE, encode_state(state))

    async def load_callbacks(self) -> SavedCallbacks:
        return decode_callbacks(await self._get(CALLBACKS))

    async def save_callbacks(self, records: SavedCallbacks) -> None:
        await self._put(CALLBACKS, encode_callbacks(records))


class RedisStateStore(SharedStateStore):
    """Keys ``<stream>:reconcile:state`` and ``<stream>:reconcile:callbacks``."""

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = prefix
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.from_url(self._url, socket_timeout=10)
        return self._client

    async def _get(self, name: str) -> bytes | None:
        value = await self._redis().get(f"{self._prefix}:reconcile:{name}")
        return bytes(value) if value is not None else None

    async def _put(self, name: str, blob: bytes) -> None:
        await self._redis().set(f"{self._prefix}:reconcile:{name}", blob)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class NatsStateStore(SharedStateStore):
    """Keys ``state`` and ``callbacks`` of the key-value bucket ``<stream>_reconcile``."""

    def __init__(self, url: str, stream: str) -> None:
        self._url = url
        self._bucket_name = f"{stream}_reconcile"
        self._client: Any = None
        self._bucket: Any = None

    async def _kv(self) -> Any:
        if self._bucket is None:
            import nats
            import nats.js.errors

            if self._client is None:
                self._client = await nats.connect(self._url, connect_timeout=5)
            js = self._client.jetstream()
            try:
                self._bucket = await js.key_value(self._bucket_name)
            except nats.js.errors.BucketNotFoundError:
                self._bucket = await js.create_key_value(bucket=self._bucket_name, history=1)
        return self._bucket

    async def _get(self, name: str) -> bytes | None:
        import nats.js.errors

        bucket = await self._kv()
        try:
            entry = await bucket.get(name)
        except nats.js.errors.KeyNotFoundError:
            return None
        return bytes(entry.value) if entry.value else None

    async def _put(self, name: str, blob: bytes) -> None:
        await (await self._kv()).put(name, blob)

    async def close(self) -> None:
        client, self._client, self._bucket = self._client, None, None
        if client is not None and not client.is_closed:
            await client.close()
