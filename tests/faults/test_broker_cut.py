"""A sink's broker connection cut under load (5 s short, 30 s long): nothing lost, backlog drains.

A :class:`TcpProxy` sits between the receiver and the shared broker; cutting it resets
every connection and refuses new ones, as a network partition would, without touching the
broker. Callbacks keep being acknowledged (the intake holds them), the intake depth rises,
and once the proxy is restored the backlog drains to 0 and every acknowledged event is in
the broker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.brokers import NATS, REDIS, TcpProxy, require_service, unique
from tests.faults.support import (
    LEDGER,
    PATH,
    PATIENT_RETRY,
    Load,
    Profile,
    dead_letter_ids,
    delete_nats_stream,
    delete_redis_keys,
    metric,
    nats_ids,
    new_port,
    receiver_config,
    redis_ids,
    serving,
    wait_drained,
    wait_for_ids,
)

Reader = Callable[[], Awaitable[list[str]]]


async def cut_under_load(
    tmp_path: Path, profile: Profile, proxy: TcpProxy, sinks: str, read: Reader
) -> None:
    port = new_port()
    config = receiver_config(tmp_path, port, sinks=sinks, pipeline=PATIENT_RETRY)
    async with serving(config, port) as receiver:
        load = Load(receiver.base, f"http://127.0.0.1:{port}{PATH}", profile.concurrency)
        load.start()
        peak = 0.0
        try:
            await load.wait_acked(50)
            acked_before = len(load.acked)
            proxy.cut()
            cut_until = time.monotonic() + profile.cut_seconds
            while time.monotonic() < cut_until:
                await asyncio.sleep(0.5)
                depth = await asyncio.to_thread(metric, receiver.base, "receiver_intake_depth")
                peak = max(peak, depth)
            acked_during = len(load.acked) - acked_before
            proxy.restore()
            await load.wait_acked(len(load.acked) + 100)
        finally:
            await load.stop()
        delivered = await wait_for_ids(read, load.acked, timeout=60 + profile.cut_seconds)
        await wait_drained(receiver.base, timeout=60 + profile.cut_seconds)
        delivered = await read()
        failures = await asyncio.to_thread(metric, receiver.base, "receiver_sink_failures_total")
    lost = set(load.acked) - set(delivered)
    duplicates = len(delivered) - len(set(delivered))
    load.record(faults=1)
    LEDGER.add(lost=len(lost), duplicates=duplicates)
    print(
        f"cut {profile.cut_seconds:.0f} s: acknowledged {len(load.acked)} "
        f"({acked_during} during the cut), peak depth {peak:.0f}, sink failures {failures:.0f}, "
        f"delivered {len(set(delivered))}, duplicates {duplicates}, lost {len(lost)}"
    )
    assert acked_during > 0, "callbacks were not acknowledged while the broker was away"
    assert peak > 0, "the backlog never showed in receiver_intake_depth"
    assert failures > 0, "the cut did not make a publish fail"
    assert not lost, f"{len(lost)} acknowledged callbacks never reached the broker"
    assert duplicates == 0
    assert dead_letter_ids(tmp_path / "dead.db") == []
    assert load.server_errors == 0, load.statuses


@pytest.fixture
async def nats_proxy() -> TcpProxy:
    require_service("NATS", NATS)
    return await TcpProxy(NATS).start()


@pytest.fixture
async def redis_proxy() -> TcpProxy:
    require_service("Redis", REDIS)
    return await TcpProxy(REDIS).start()


async def test_nats_connection_cut_under_load(
    tmp_path: Path, profile: Profile, nats_proxy: TcpProxy
) -> None:
    stream = unique("RELIABILITY_CUT_")
    sinks = (
        f'[[sinks]]\nname = "out"\ntype = "nats"\nurl = "nats://127.0.0.1:{nats_proxy.port}"\n'
        f'subject = "{stream.lower()}.{{room_id}}"\nstream = "{stream}"\ntimeout_seconds = 2\n'
    )

    async def read() -> list[str]:
        return await nats_ids(stream)

    try:
        await cut_under_load(tmp_path, profile, nats_proxy, sinks, read)
    finally:
        await nats_proxy.close()
        await delete_nats_stream(stream)


async def test_redis_connection_cut_under_load(
    tmp_path: Path, profile: Profile, redis_proxy: TcpProxy
) -> None:
    stream = unique("reliability:cut:")
    sinks = (
        f'[[sinks]]\nname = "out"\ntype = "redis"\n'
        f'url = "redis://127.0.0.1:{redis_proxy.port}/0"\nstream = "{stream}"\n'
        "timeout_seconds = 2\n"
    )

    async def read() -> list[str]:
        return await redis_ids(stream)

    try:
        await cut_under_load(tmp_path, profile, redis_proxy, sinks, read)
    finally:
        await redis_proxy.close()
        await delete_redis_keys(stream)
