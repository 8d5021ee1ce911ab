"""Intake full and disk full: 503 with ``Retry-After``, and no 2xx for anything not stored.

The sink is an HTTP endpoint behind a :class:`TcpProxy` that is cut from the start, so
accepted events pile up in the intake. Once it is full (``intake.max_pending``) or its disk
is (a 2 MiB tmpfs mounted for the test), callbacks must be refused with 503 and
``Retry-After``; every id that was answered 2xx must be in the intake file, and after the
fault is lifted every one of them reaches the sink. A third case fills the disk under the
jsonl sink instead: writes fail and are retried, and nothing acknowledged may be missing
from the file, even after a ``kill -9`` once the intake reports it delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.brokers import TcpProxy
from tests.faults.support import (
    LEDGER,
    PATH,
    PATIENT_RETRY,
    Capture,
    Load,
    http_sink,
    intake_ids,
    metric,
    new_port,
    receiver_config,
    serving,
    wait_drained,
    wait_for_ids,
)
from tests.simulator.conftest import serve

MAX_PENDING = 25
PADDING = "x" * 20_000  # makes each stored event about 20 KB


@pytest.fixture
async def blocked_sink() -> AsyncIterator[tuple[Capture, TcpProxy]]:
    """A capturing HTTP endpoint behind a proxy that starts cut."""
    capture = Capture()
    with serve(capture) as url:
        proxy = await TcpProxy(("127.0.0.1", int(url.rsplit(":", 1)[1]))).start()
        proxy.cut()
        try:
            yield capture, proxy
        finally:
            await proxy.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted at ``tmp_path/disk`` (skipped where mounting is not allowed)."""
    target = tmp_path / "disk"
    target.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], check=False)


def fill(disk: Path, leave_bytes: int) -> Path:
    """Fill ``disk`` with one file until only about ``leave_bytes`` are free."""
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, free - leave_bytes))
    return filler


async def test_intake_full_answers_503_and_acknowledges_only_what_it_stored(
    tmp_path: Path, blocked_sink: tuple[Capture, TcpProxy]
) -> None:
    capture, proxy = blocked_sink
    port = new_port()
    config = receiver_config(
        tmp_path,
        port,
        sinks=http_sink(proxy.port),
        intake=f"max_pending = {MAX_PENDING}",
        pipeline=PATIENT_RETRY,
    )
    async with serving(config, port) as receiver:
        load = Load(receiver.base, f"http://127.0.0.1:{port}{PATH}", concurrency=8)
        load.start()
        try:
            async with asyncio.timeout(30):
                while load.statuses.get("503", 0) < 100:
                    await asyncio.sleep(0.05)
        finally:
            await load.stop()
        stored = intake_ids(tmp_path / "intake.db")
        ready = await readyz(receiver.base)
        proxy.restore()
        delivered = await wait_for_ids(capture.read, load.acked)
        await wait_drained(receiver.base)
        after = Load(receiver.base, load.url, concurrency=2, limit=10, tag="after")
        await after.run()
        await wait_for_ids(capture.read, after.acked)
    load.record(faults=1)
    after.record()
    lost = set(load.acked) - set(delivered)
    LEDGER.add(lost=len(lost))
    print(
        f"intake full: acknowledged {len(load.acked)}, statuses {dict(load.statuses)}, "
        f"codes {dict(load.codes)}, /readyz while full {ready}"
    )
    assert 0 < len(load.acked) <= MAX_PENDING
    assert set(load.acked) <= stored, "a 2xx was sent for an event that is not in the intake"
    assert load.codes == {"intake_full": load.statuses["503"]}
    assert load.retry_after_missing == 0
    assert not lost
    assert len(after.acked) == 10, after.statuses
    assert load.server_errors == 0 and after.server_errors == 0


async def test_intake_disk_full_answers_503_and_acknowledges_only_what_it_stored(
    tmp_path: Path, tiny_disk: Path, blocked_sink: tuple[Capture, TcpProxy]
) -> None:
    capture, proxy = blocked_sink
    filler = fill(tiny_disk, 600_000)
    port = new_port()
    config = receiver_config(
        tmp_path,
        port,
        sinks=http_sink(proxy.port),
        pipeline=PATIENT_RETRY,
        intake_dir=tiny_disk,
    )
    async with serving(config, port) as receiver:
        load = Load(
            receiver.base,
            f"http://127.0.0.1:{port}{PATH}",
            concurrency=4,
            extra_fields={"padding": PADDING},
        )
        load.start()
        try:
            async with asyncio.timeout(60):
                while load.statuses.get("503", 0) < 30:
                    await asyncio.sleep(0.05)
        finally:
            await load.stop()
        stored = intake_ids(tiny_disk / "intake.db")
        ready_full = await readyz(receiver.base)
        filler.unlink()  # space again: appends succeed, readiness returns
        after = Load(receiver.base, load.url, concurrency=2, limit=10, tag="after")
        await after.run()
        ready_after = await readyz(receiver.base)
        proxy.restore()
        delivered = await wait_for_ids(capture.read, set(load.acked) | set(after.acked))
        await wait_drained(receiver.base)
        logs = receiver.logs()
    load.record(faults=1)
    after.record()
    lost = (set(load.acked) | set(after.acked)) - set(delivered)
    LEDGER.add(lost=len(lost))
    print(
        f"disk full: acknowledged {len(load.acked)}, statuses {dict(load.statuses)}, "
        f"codes {dict(load.codes)}, /readyz while full {ready_full}, after {ready_after}"
    )
    assert len(load.acked) > 0
    assert set(load.acked) <= stored, "a 2xx was sent for an event that is not in the intake"
    assert set(load.codes) == {"intake_unavailable"}, load.codes
    assert load.retry_after_missing == 0
    assert ready_full == 503 and ready_after == 200
    assert len(after.acked) == 10, after.statuses
    assert not lost
    assert load.server_errors == 0 and after.server_errors == 0
    assert "database or disk is full" in logs


async def test_sink_disk_full_loses_nothing_acknowledged(tmp_path: Path, tiny_disk: Path) -> None:
    """The jsonl sink's disk fills up: writes fail and are retried; then ``kill -9``."""
    out = tiny_disk / "out.jsonl"
    sinks = f'[[sinks]]\nname = "out"\ntype = "jsonl"\npath = "{out}"\n'
    port = new_port()
    config = receiver_config(tmp_path, port, sinks=sinks, pipeline=PATIENT_RETRY)
    async with serving(config, port) as receiver:
        url = f"http://127.0.0.1:{port}{PATH}"
        warm = Load(receiver.base, url, concurrency=2, limit=5, tag="warm")
        await warm.run()  # the sink has its file open
        await wait_for_ids(lambda: _ids(out), warm.acked)
        filler = fill(tiny_disk, 30_000)
        load = Load(receiver.base, url, concurrency=4, limit=60, extra_fields={"padding": PADDING})
        await load.run()
        async with asyncio.timeout(30):
            while (
                await asyncio.to_thread(metric, receiver.base, "receiver_sink_failures_total") < 3
            ):
                await asyncio.sleep(0.2)
        filler.unlink()
        await wait_drained(receiver.base)
        receiver.kill()  # the intake says delivered: the file must hold every event
        await asyncio.to_thread(receiver.start, 30)
        await wait_drained(receiver.base)
        acked = set(warm.acked) | set(load.acked)
        delivered = await wait_for_ids(lambda: _ids(out), acked, timeout=20)
    load.record(faults=2)
    torn = _torn_lines(out)
    lost = acked - set(delivered)
    duplicates = len(delivered) - len(set(delivered))
    LEDGER.add(lost=len(lost), duplicates=duplicates)
    print(
        f"sink disk full: acknowledged {len(acked)}, delivered {len(set(delivered))}, "
        f"lost {len(lost)}, duplicates {duplicates}, unreadable lines {torn}"
    )
    assert len(load.acked) == 60
    assert not lost, f"{len(lost)} acknowledged events are not in the jsonl file"
    assert torn == 0, "the file holds lines that are not JSON"
    assert duplicates == 0


async def readyz(base: str) -> int:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{base}/readyz", timeout=5)).status_code


async def _ids(path: Path) -> list[str]:
    return await asyncio.to_thread(_tolerant_ids, path)


def _tolerant_ids(path: Path) -> list[str]:
    """The ids in a jsonl file, skipping lines that are not JSON (counted by _torn_lines)."""
    ids = []
    for raw in path.read_bytes().splitlines() if path.exists() else []:
        with contextlib.suppress(orjson.JSONDecodeError):
            ids.append(str(orjson.loads(raw)["id"]))
    return ids


def _torn_lines(path: Path) -> int:
    count = 0
    for raw in path.read_bytes().splitlines():
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            count += 1
    return count
