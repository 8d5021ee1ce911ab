"""A captured signature reused with another body inside the window: what still stops it.

The signature covers the registered URL and the time, not the body, so a forged body sent
with captured ``x-hw-mss-*`` headers within ``auth.tolerance_seconds`` is accepted. What
remains: an exact replay is a duplicate (stored once); after the window the headers are
``signature_expired``; and enrichment against the tenant's jobs (the simulator here) flags
a body naming a job the tenant does not have (``not_found``) or a job of another room
(``mismatch``), which ``on_not_found``/``on_mismatch = "dead_letter"`` keep away from the
sinks. A forged body naming a real job in its real room is not detectable (residual risk,
see docs/RELIABILITY.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver.simulator import create_api_app, generate_jobs, live_job_per_room
from tests.attacks.support import refused
from tests.faults.support import (
    LEDGER,
    PATH,
    SIM_AK,
    SIM_PROJECT,
    SIM_SEED,
    SIM_SK,
    dead_letter_ids,
    enrichment_config,
    job_secrets,
    new_port,
    receiver_config,
    scan_for_secrets,
    started,
)
from tests.helpers import KEY, callback_body, read_jsonl, signed_headers
from tests.simulator.conftest import serve

STREAM_KEY = "rtmp-stream-key-0f1e2d3c4b5a6978"
TOLERANCE = 4


@pytest.fixture(scope="module")
def jobs() -> list[dict[str, Any]]:
    return generate_jobs(40, SIM_SEED, SIM_PROJECT)


@pytest.fixture(scope="module")
def sim_url(jobs: list[dict[str, Any]]) -> Iterator[str]:
    with serve(create_api_app(jobs, SIM_PROJECT, SIM_AK, SIM_SK)) as url:
        yield url


def rooms_and_jobs(jobs: list[dict[str, Any]]) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two live jobs of two different rooms."""
    live = live_job_per_room(jobs)
    first, second = live[0], next(j for j in live if j["room_id"] != live[0]["room_id"])
    return (str(first["room_id"]), str(first["job_id"])), (
        str(second["room_id"]),
        str(second["job_id"]),
    )


def wait_settled(directory: Path, ids: set[str], timeout: float = 20) -> list[dict[str, Any]]:
    """Wait until every id is in the sink or dead-lettered; the sink's envelopes."""
    deadline = time.monotonic() + timeout
    while True:
        lines = read_jsonl(directory / "out.jsonl")
        settled = {str(line["id"]) for line in lines} | set(dead_letter_ids(directory / "dead.db"))
        if ids <= settled or time.monotonic() > deadline:
            return lines  # type: ignore[return-value]
        time.sleep(0.2)


@pytest.mark.parametrize("policy", ["forward", "dead_letter"])
def test_forged_bodies_on_a_captured_signature(
    tmp_path: Path, jobs: list[dict[str, Any]], sim_url: str, policy: str
) -> None:
    (room_a, job_a), (_room_b, job_b) = rooms_and_jobs(jobs)
    port = new_port()
    config = receiver_config(
        tmp_path,
        port,
        auth=f'type = ["MSS_A_HEAD"]\nkeys = ["{KEY}"]\ntolerance_seconds = {TOLERANCE}\n',
        extra=enrichment_config(sim_url, on_not_found=policy, on_mismatch=policy),
    )
    url = f"http://127.0.0.1:{port}{PATH}"
    with started(config, port) as receiver, httpx.Client(base_url=receiver.base) as http:
        time.sleep(0.5)  # the first sweep warms the cache
        captured = signed_headers(url)  # one genuine callback, seen by an attacker
        genuine = callback_body(
            "RTMP_STREAM_STATE_CHANGE", room_a, job_id=job_a, state="CONNECTED",
            stream_key=STREAM_KEY,
        )  # fmt: skip
        forgeries = {
            "unknown job": callback_body(room=room_a, job_id="f" * 32, reply_id="forged-1"),
            "job of another room": callback_body(room=room_a, job_id=job_b, reply_id="forged-2"),
            "real job, real room": callback_body(room=room_a, job_id=job_a, reply_id="forged-3"),
        }
        answers = {"genuine": http.post(PATH, content=genuine, headers=captured)}
        for name, body in forgeries.items():
            answers[name] = http.post(PATH, content=body, headers=captured)
        replay = http.post(PATH, content=forgeries["unknown job"], headers=captured)
        time.sleep(TOLERANCE + 1.5)
        expired = http.post(
            PATH,
            content=callback_body(room=room_a, job_id=job_b, reply_id="late"),
            headers=captured,
        )
        ids = {name: answer.json()["id"] for name, answer in answers.items()}
        lines = wait_settled(tmp_path, set(ids.values()))
        logs = receiver.logs()
    assert all(answer.status_code == 200 for answer in answers.values()), answers
    assert replay.json() == {"status": "duplicate", "id": ids["unknown job"]}
    refused(expired.status_code, expired.json()["error"], 401, "signature_expired")
    by_id = {str(line["id"]): line for line in lines}
    dead = set(dead_letter_ids(tmp_path / "dead.db"))
    status = {
        name: by_id[event]["data"]["enrichment"]["status"] if event in by_id else "dead-lettered"
        for name, event in ids.items()
    }
    print(f"policy {policy}: {status}")
    assert status["genuine"] == "ok" and status["real job, real room"] == "ok"
    if policy == "forward":
        assert status["unknown job"] == "not_found"
        assert status["job of another room"] == "mismatch"
        assert not dead
    else:
        assert status["unknown job"] == status["job of another room"] == "dead-lettered"
        assert {ids["unknown job"], ids["job of another room"]} == dead
    LEDGER.add(forgeries_flagged=2, forgeries_unflagged=1, attacks_tried=3, attacks_refused=2)
    sink_text = (tmp_path / "out.jsonl").read_text()
    leaks = scan_for_secrets(
        {"log": logs, "sink": sink_text}, [KEY, SIM_SK, STREAM_KEY, *job_secrets(jobs)]
    )
    assert not leaks, leaks
    assert by_id[ids["genuine"]]["data"]["job"]["job_id"] == job_a
