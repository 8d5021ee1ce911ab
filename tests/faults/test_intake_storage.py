"""Faults inside an SQLite append, in a real process (:mod:`tests.faults.intake_faults`).

A failed fdatasync of the WAL: the callback gets 503, the receiver refuses every callback
and stays not ready until it is restarted, even though the disk works again, and neither
that process nor the next one delivers what was refused. A crash between any two steps of
an append (INSERT, COMMIT, fdatasync, answer): the callback gets no answer; after a
restart, the sender's retry of the same signed request is answered 200 and the event is
delivered exactly once; ``duplicate`` exactly when the event was already stored (and so
delivered without the retry).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import httpx
import pytest

from tests.faults.support import (
    LEDGER,
    PATH,
    Load,
    jsonl_ids,
    new_port,
    receiver_config,
    serving,
    stop,
    wait_drained,
    wait_for_ids,
)
from tests.helpers import ReceiverProcess, callback_body, signed_headers

FAULTS = "tests.faults.intake_faults"
REPO = Path(__file__).resolve().parents[2]


def faulty(config: Path, port: int, fault: str, armed: Path) -> ReceiverProcess:
    """A receiver whose intake suffers ``fault`` once ``armed`` exists."""
    env = {"INTAKE_FAULT": fault, "INTAKE_FAULT_ARMED": str(armed), "PYTHONPATH": str(REPO)}
    return ReceiverProcess(config, port, module=FAULTS, env=env)


class Callback:
    """One signed callback, sent again as is (as its sender retries it)."""

    def __init__(self, base: str, url: str) -> None:
        self.base = base
        self.body = callback_body(reply_id=f"fault-{uuid.uuid4().hex}")
        self.headers = signed_headers(url)

    async def post(self) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as http:
            return await http.post(PATH, content=self.body, headers=self.headers)


async def readyz(base: str) -> int:
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        return (await http.get("/readyz")).status_code


async def warm_up(base: str, url: str, out: Path) -> Load:
    load = Load(base, url, concurrency=2, limit=10, tag=f"warm-{uuid.uuid4().hex[:8]}")
    await load.run()
    assert len(load.acked) == 10, load.statuses
    await wait_for_ids(lambda: _read(out), load.acked)
    return load


async def _read(out: Path) -> list[str]:
    return jsonl_ids(out)


async def test_a_failed_fdatasync_refuses_until_restart_and_delivers_nothing_refused(
    tmp_path: Path,
) -> None:
    port, out, armed = new_port(), tmp_path / "out.jsonl", tmp_path / "armed"
    config = receiver_config(tmp_path, port)
    url = f"http://127.0.0.1:{port}{PATH}"
    receiver = faulty(config, port, "fdatasync-eio", armed)
    await asyncio.to_thread(receiver.start, 30)
    try:
        warm = await warm_up(receiver.base, url, out)
        armed.touch()
        failed = Callback(receiver.base, url)
        answer = await failed.post()
        assert not armed.exists(), "the fault did not strike"
        assert answer.status_code == 503 and "retry-after" in answer.headers
        assert answer.json()["error"] == "intake_unavailable"
        await asyncio.sleep(2.5)  # acks and housekeeping commit and sync again, and work
        later = Callback(receiver.base, url)
        refused = [(await later.post()).status_code, await readyz(receiver.base)]
        await asyncio.sleep(0.5)
        delivered = jsonl_ids(out)
        logs = receiver.logs()
        receiver.kill()  # no shutdown code: the next process reads what the disk holds
    finally:
        await asyncio.to_thread(stop, receiver)
    assert refused == [503, 503], "the intake accepted again after a failed fdatasync"
    assert set(delivered) == set(warm.acked), "a refused event was delivered"
    assert "intake fdatasync failed" in logs

    async with serving(config, port) as again:
        await wait_drained(again.base)
        after_restart = jsonl_ids(out)
        retries = [await failed.post(), await later.post()]
        statuses = [(r.status_code, r.json()["status"]) for r in retries]
        ids = [r.json()["id"] for r in retries]
        await wait_for_ids(lambda: _read(out), ids)
        await wait_drained(again.base)
        final = jsonl_ids(out)
    LEDGER.add(faults_injected=1, refused_503=2, callbacks_sent=14, acknowledged=12)
    assert set(after_restart) == set(warm.acked), "a refused event was delivered after restart"
    assert statuses == [(200, "accepted"), (200, "accepted")], statuses
    assert sorted(final) == sorted([*warm.acked, *ids])


# The outcome of the sender's retry after a crash at each point: stored the first time or not.
CRASH_POINTS = {
    "kill-before-commit": "accepted",
    "kill-before-fdatasync": "duplicate",
    "kill-before-answer": "duplicate",
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
async def test_a_crash_inside_an_append_acknowledges_only_what_is_delivered(
    tmp_path: Path, point: str
) -> None:
    port, out, armed = new_port(), tmp_path / "out.jsonl", tmp_path / "armed"
    config = receiver_config(tmp_path, port)
    url = f"http://127.0.0.1:{port}{PATH}"
    receiver = faulty(config, port, point, armed)
    await asyncio.to_thread(receiver.start, 30)
    try:
        warm = await warm_up(receiver.base, url, out)
        armed.touch()
        crashed = Callback(receiver.base, url)
        with pytest.raises(httpx.TransportError):
            await crashed.post()
        assert receiver.process is not None
        exit_code = await asyncio.to_thread(receiver.process.wait, 10)
    finally:
        await asyncio.to_thread(stop, receiver)
    assert exit_code == -signal.SIGKILL

    async with serving(config, port) as again:
        await wait_drained(again.base)
        before_retry = jsonl_ids(out)
        retry = await crashed.post()
        event = retry.json()["id"]
        await wait_for_ids(lambda: _read(out), [event])
        await wait_drained(again.base)
        final = jsonl_ids(out)
    LEDGER.add(faults_injected=1, callbacks_sent=12, acknowledged=11)
    assert retry.status_code == 200
    stored_before = event in before_retry
    assert retry.json()["status"] == ("duplicate" if stored_before else "accepted")
    assert retry.json()["status"] == CRASH_POINTS[point]
    assert sorted(final) == sorted([*warm.acked, event]), "lost or delivered twice"
