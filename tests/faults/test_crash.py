"""``kill -9`` of the receiver under load, repeated: no acknowledged callback is lost.

A bounded async sender keeps posting while the receiver is killed and restarted (2 times
in the short run, 5 in the long one). Afterwards every callback that got a 2xx must be in
the sink: the jsonl file (which drops ids it already wrote, so no duplicate lines either),
or a NATS JetStream stream read back message by message (duplicates are counted there;
``Nats-Msg-Id`` should keep them at 0).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.brokers import NATS, NATS_URL, require_service, unique
from tests.faults.support import (
    LEDGER,
    PATH,
    PATIENT_RETRY,
    Load,
    Profile,
    delete_nats_stream,
    jsonl_ids,
    nats_ids,
    new_port,
    receiver_config,
    scan_for_secrets,
    serving,
    wait_drained,
    wait_for_ids,
)
from tests.helpers import KEY

Reader = Callable[[], Awaitable[list[str]]]


async def kill_repeatedly(tmp_path: Path, profile: Profile, sinks: str, read: Reader) -> None:
    port = new_port()
    config = receiver_config(tmp_path, port, sinks=sinks, pipeline=PATIENT_RETRY)
    async with serving(config, port) as receiver:
        load = Load(receiver.base, f"http://127.0.0.1:{port}{PATH}", profile.concurrency)
        load.start()
        try:
            for _ in range(profile.kills):
                await load.wait_acked(len(load.acked) + 60)
                receiver.kill()  # SIGKILL: no shutdown code runs
                await asyncio.sleep(0.3)  # callbacks meanwhile meet a closed port
                await asyncio.to_thread(receiver.start, 30)
            await load.wait_acked(len(load.acked) + 60)
        finally:
            await load.stop()
        delivered = await wait_for_ids(read, load.acked)
        await wait_drained(receiver.base)
        delivered = await read()
        logs = receiver.logs()
    lost = set(load.acked) - set(delivered)
    duplicates = len(delivered) - len(set(delivered))
    load.record(faults=profile.kills)
    LEDGER.add(lost=len(lost), duplicates=duplicates)
    print(
        f"kill -9 x{profile.kills}: sent {load.sent}, acknowledged {len(load.acked)}, "
        f"delivered {len(set(delivered))}, duplicates {duplicates}, lost {len(lost)}, "
        f"statuses {dict(load.statuses)}, transport errors {dict(load.errors)}"
    )
    assert not lost, f"{len(lost)} acknowledged callbacks never reached the sink"
    assert duplicates == 0, f"{duplicates} events reached the sink twice"
    assert load.server_errors == 0, load.statuses
    assert len(load.errors) > 0, "the kills did not interrupt the load"
    assert not scan_for_secrets({"receiver log": logs}, [KEY])


async def test_kill_9_under_load_jsonl_sink(tmp_path: Path, profile: Profile) -> None:
    out = tmp_path / "out.jsonl"
    sinks = f'[[sinks]]\nname = "out"\ntype = "jsonl"\npath = "{out}"\n'

    async def read() -> list[str]:
        return jsonl_ids(out)

    await kill_repeatedly(tmp_path, profile, sinks, read)


async def test_kill_9_under_load_nats_sink(tmp_path: Path, profile: Profile) -> None:
    require_service("NATS", NATS)
    stream = unique("RELIABILITY_KILL_")
    subject = f"{stream.lower()}.{{room_id}}"
    sinks = (
        f'[[sinks]]\nname = "out"\ntype = "nats"\nurl = "{NATS_URL}"\n'
        f'subject = "{subject}"\nstream = "{stream}"\n'
    )

    async def read() -> list[str]:
        return await nats_ids(stream)

    try:
        await kill_repeatedly(tmp_path, profile, sinks, read)
    finally:
        await delete_nats_stream(stream)
