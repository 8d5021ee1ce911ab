"""What the replicated tests share: a replica's configuration head, and dropping a run's
keys and streams from the broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import nats
import redis.asyncio as aioredis

from tests.brokers import NATS, NATS_URL, REDIS, REDIS_URL, require_service, unique
from tests.helpers import KEY


def replica_head(index: int, port: int, kind: str, stream: str, intake: str = "") -> str:
    """``[server]``, ``[auth]`` and ``[intake]`` of replica ``index`` on ``kind``."""
    url = NATS_URL if kind == "nats" else REDIS_URL
    return f"""
[server]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}/callbacks/metastudio"
graceful_shutdown_seconds = 2

[auth]
type = ["MSS_A_HEAD"]
keys = ["{KEY}"]

[intake]
backend = "{kind}"
url = "{url}"
stream = "{stream}"
replica_id = "replica-{index}"
lease_ttl_seconds = 1.5
{intake}
"""


def file_sink_config(directory: Path, index: int, head: str, middle: str = "") -> Path:
    """Replica ``index``'s configuration file: ``head``, its dead letters, ``middle``, and
    every event routed to ``out-<index>.jsonl``."""
    text = f"""{head}
[dead_letters]
path = "{directory / f"dead-{index}.db"}"
{middle}
[[sinks]]
name = "file"
type = "jsonl"
path = "{directory / f"out-{index}.jsonl"}"
fsync = false

[[routes]]
sinks = ["file"]
"""
    path = directory / f"receiver-{index}.toml"
    path.write_text(text)
    return path


async def drop(kind: str, stream: str) -> None:
    """Delete every key (Redis) or stream and bucket (NATS) named after ``stream``."""
    if kind == "redis":
        client = aioredis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{stream}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        return
    connection = await nats.connect(NATS_URL)
    js = connection.jetstream()
    for info in await js.streams_info():
        name = info.config.name or ""
        if name.startswith((stream, f"KV_{stream}")):
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
    await connection.close()


def broker_stream(kind: str, prefix: str) -> Iterator[tuple[str, str]]:
    """A fixture's body: ``(kind, a fresh stream name)``, everything of it dropped after."""
    require_service(kind, NATS if kind == "nats" else REDIS)
    stream = unique(prefix.upper().replace("-", "_") if kind == "nats" else prefix)
    yield kind, stream
    asyncio.run(drop(kind, stream))
