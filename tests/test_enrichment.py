"""Enrichment inside the running receiver, against the simulator over real HTTP."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver.app import ReceiverApp
from receiver.config import load_settings
from receiver.deadletters import DeadLetterStore
from receiver.simulator import create_api_app, generate_jobs
from tests.helpers import callback_body, read_jsonl, signed_headers, write_config
from tests.simulator.conftest import serve

PROJECT = "e" * 32
AK, SK = "ENRICHAK", "enrich-secret-key"
URL = "http://127.0.0.1:8999/callbacks/metastudio"
PATH = "/callbacks/metastudio"


@pytest.fixture(scope="module")
def sim_jobs() -> list[dict[str, Any]]:
    return generate_jobs(12, 5, PROJECT)


def sim(sim_jobs: list[dict[str, Any]], **faults: Any) -> Iterator[str]:
    with serve(create_api_app(sim_jobs, PROJECT, AK, SK, **faults)) as url:
        yield url


@pytest.fixture(scope="module")
def api(sim_jobs: list[dict[str, Any]]) -> Iterator[str]:
    yield from sim(sim_jobs)


@pytest.fixture(scope="module")
def broken_api(sim_jobs: list[dict[str, Any]]) -> Iterator[str]:
    yield from sim(sim_jobs, fail_rate=1.0)


def enrichment_config(tmp_path: Path, endpoint: str, **enrichment: object) -> Path:
    lines = "\n".join(f"{key} = {value!r}".replace("'", '"') for key, value in enrichment.items())
    extra = f"""
[metastudio]
endpoint = "{endpoint}"
project_id = "{PROJECT}"
ak = "{AK}"
sk = "{SK}"
rate_limit_per_second = 100
max_retries = 1
timeout_seconds = 2

[enrichment]
enabled = true
{lines}
"""
    return write_config(tmp_path, 8999, extra=extra)


@pytest.fixture
async def receiver(
    tmp_path: Path, api: str
) -> AsyncIterator[tuple[ReceiverApp, httpx.AsyncClient]]:
    app = ReceiverApp(load_settings(enrichment_config(tmp_path, api)))
    await app.service.start()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8999"
    ) as http:
        yield app, http
    await app.service.stop()


async def lines(path: Path, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(15):
        while len(found := read_jsonl(path)) < count:
            await asyncio.sleep(0.02)
    return found  # type: ignore[return-value]


async def test_envelope_carries_the_job_without_secrets(
    receiver: tuple[ReceiverApp, httpx.AsyncClient], sim_jobs: list[dict[str, Any]], tmp_path: Path
) -> None:
    _, http = receiver
    job = sim_jobs[0]
    body = callback_body(
        "SHOOT_SCRIPT_SWITCH", job["room_id"], job_id=job["job_id"], shoot_script_sequence_no="2"
    )
    assert (await http.post(PATH, content=body, headers=signed_headers(URL))).status_code == 200
    (envelope,) = await lines(tmp_path / "out.jsonl", 1)
    data = envelope["data"]
    assert data["enrichment"]["status"] == "ok"
    assert data["enrichment"]["source"] in ("cache", "api")
    assert data["enrichment"]["looked_up_at"].endswith("Z")
    assert data["job"]["job_id"] == job["job_id"] and data["job"]["room_name"] == job["room_name"]
    text = (tmp_path / "out.jsonl").read_text()
    assert job["live_event_callback_config"]["key"] not in text
    assert all(user["signature"] not in text for user in job["rtc_room_info"]["users"])


async def test_unknown_job_and_wrong_room_are_flagged(
    receiver: tuple[ReceiverApp, httpx.AsyncClient], sim_jobs: list[dict[str, Any]], tmp_path: Path
) -> None:
    _, http = receiver
    job = next(j for j in sim_jobs if j["state"] in ("WAITING", "PROCESSING"))
    other_room = next(j["room_id"] for j in sim_jobs if j["room_id"] != job["room_id"])
    await asyncio.sleep(0.3)  # the start-up sweep has indexed the active jobs
    forged = [
        callback_body("REPLY_COMMAND_FINISH", job["room_id"], job_id="not-a-job", reply_id="1"),
        callback_body("REPLY_COMMAND_FINISH", other_room, job_id=job["job_id"], reply_id="2"),
    ]
    for body in forged:
        assert (await http.post(PATH, content=body, headers=signed_headers(URL))).status_code == 200
    statuses = {
        e["data"]["message"]["reply_id"]: e["data"]["enrichment"]["status"]
        for e in await lines(tmp_path / "out.jsonl", 2)
    }
    assert statuses == {"1": "not_found", "2": "mismatch"}


async def test_api_failure_forwards_unavailable_after_the_deadline(
    tmp_path: Path, broken_api: str, sim_jobs: list[dict[str, Any]]
) -> None:
    app = ReceiverApp(load_settings(enrichment_config(tmp_path, broken_api, deadline_seconds=3.0)))
    await app.service.start()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8999"
    ) as http:
        for n in range(3):
            body = callback_body(
                "REPLY_COMMAND_FINISH",
                sim_jobs[n]["room_id"],
                job_id=sim_jobs[n]["job_id"],
                reply_id=str(n),
            )
            assert (
                await http.post(PATH, content=body, headers=signed_headers(URL))
            ).status_code == 200
        found = await lines(tmp_path / "out.jsonl", 3)
    await app.service.stop()
    assert {e["data"]["enrichment"]["status"] for e in found} == {"unavailable"}
    assert all("500" in e["data"]["enrichment"]["error"] for e in found)
    assert all(e["data"]["job"] is None for e in found)


async def test_not_found_can_be_dead_lettered(
    tmp_path: Path, api: str, sim_jobs: list[dict[str, Any]]
) -> None:
    app = ReceiverApp(load_settings(enrichment_config(tmp_path, api, on_not_found="dead_letter")))
    await app.service.start()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8999"
    ) as http:
        body = callback_body(
            "REPLY_COMMAND_FINISH", sim_jobs[0]["room_id"], job_id="forged-job", reply_id="x"
        )
        assert (await http.post(PATH, content=body, headers=signed_headers(URL))).status_code == 200
        async with asyncio.timeout(10):
            while app.service.intake.depth():
                await asyncio.sleep(0.02)
    await app.service.stop()
    store = DeadLetterStore(tmp_path / "dead.db")
    (letter,) = await store.list()
    await store.close()
    assert letter.sink == "out" and "not_found" in letter.last_error
    assert read_jsonl(tmp_path / "out.jsonl") == []


async def test_stream_end_refreshes_the_job(
    receiver: tuple[ReceiverApp, httpx.AsyncClient],
    api: str,
    sim_jobs: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    _, http = receiver
    job = next(j for j in sim_jobs if j["state"] == "PROCESSING")
    first = callback_body(
        "RTMP_STREAM_STATE_CHANGE", job["room_id"], job_id=job["job_id"], state="CONNECTED"
    )
    assert (await http.post(PATH, content=first, headers=signed_headers(URL))).status_code == 200
    await lines(tmp_path / "out.jsonl", 1)
    async with httpx.AsyncClient() as admin:
        (
            await admin.post(f"{api}/_sim/jobs/{job['job_id']}/state", json={"state": "SUCCEED"})
        ).raise_for_status()
    end = callback_body(
        "RTMP_STREAM_STATE_CHANGE", job["room_id"], job_id=job["job_id"], state="END"
    )
    assert (await http.post(PATH, content=end, headers=signed_headers(URL))).status_code == 200
    envelopes = await lines(tmp_path / "out.jsonl", 2)
    assert [e["data"]["job"]["state"] for e in envelopes] == ["PROCESSING", "SUCCEED"]
    async with httpx.AsyncClient() as admin:
        (
            await admin.post(f"{api}/_sim/jobs/{job['job_id']}/state", json={"state": "PROCESSING"})
        ).raise_for_status()


async def test_the_console_shows_a_refused_event_as_dead_lettered(
    tmp_path: Path, api: str, sim_jobs: list[dict[str, Any]]
) -> None:
    config = enrichment_config(tmp_path, api, on_not_found="dead_letter")
    config.write_text(config.read_text() + "\n[admin]\nenabled = true\n")
    app = ReceiverApp(load_settings(config))
    await app.service.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8999"
        ) as http:
            body = callback_body(
                "REPLY_COMMAND_FINISH", sim_jobs[0]["room_id"], job_id="forged-job", reply_id="x"
            )
            answer = await http.post(PATH, content=body, headers=signed_headers(URL))
            async with asyncio.timeout(10):
                while app.service.intake.depth():
                    await asyncio.sleep(0.02)
        assert app.service.console is not None
        record = app.service.console.history.get(answer.json()["id"])
        assert record is not None and record.outcome == "dead_lettered"
        assert record.sinks["out"].outcome == "dead_lettered"
    finally:
        await app.service.stop()
