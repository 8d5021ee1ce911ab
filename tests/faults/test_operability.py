"""Operability of a real process: the /metrics series, JSON logs, key rotation without restart."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import orjson

from receiver.simulator import create_api_app, generate_jobs, live_job_per_room
from tests.faults.support import (
    PATH,
    SIM_AK,
    SIM_PROJECT,
    SIM_SEED,
    SIM_SK,
    Load,
    enrichment_config,
    job_secrets,
    metric,
    metrics,
    new_port,
    receiver_config,
    scan_for_secrets,
    serving,
    wait_drained,
)
from tests.helpers import KEY, callback_body, signed_headers
from tests.simulator.conftest import serve

NEW_KEY = "rotated-key-fedcba9876543210"


async def test_metrics_expose_every_operational_series(tmp_path: Path) -> None:
    jobs = generate_jobs(40, SIM_SEED, SIM_PROJECT)
    live = [(str(job["room_id"]), str(job["job_id"])) for job in live_job_per_room(jobs)]
    app = create_api_app(jobs, SIM_PROJECT, SIM_AK, SIM_SK, fail_rate=1.0)
    broken_port = new_port()  # nothing listens there: every publish fails
    sinks = (
        f'[[sinks]]\nname = "out"\ntype = "jsonl"\npath = "{tmp_path / "out.jsonl"}"\n'
        f'[[sinks]]\nname = "broken"\ntype = "http"\nurl = "http://127.0.0.1:{broken_port}/x"\n'
        "max_attempts = 2\n"
    )
    routes = '[[routes]]\nsinks = ["out", "broken"]\n'
    with serve(app) as sim_url:
        port = new_port()
        config = receiver_config(
            tmp_path,
            port,
            sinks=sinks,
            routes=routes,
            extra=enrichment_config(sim_url, deadline_seconds=0.5),
            pipeline="[pipeline.retry]\ninitial_backoff_seconds = 0.05\nmax_backoff_seconds = 0.1",
        )
        async with serving(config, port) as receiver:
            url = f"http://127.0.0.1:{port}{PATH}"
            await asyncio.sleep(0.5)  # the first sweep fails: API errors are counted
            app.state.sim.fail_rate = 0.0
            async with httpx.AsyncClient(base_url=receiver.base, timeout=10) as http:
                bad = await http.post(
                    PATH, content=callback_body(), headers=signed_headers(url, "wrong-key")
                )
                malformed = await http.post(PATH, content=b"{", headers=signed_headers(url))
                unknown = await http.post(
                    PATH,
                    content=callback_body(room=live[0][0], job_id="no-such-job"),
                    headers=signed_headers(url),
                )
            await asyncio.sleep(2.5)  # a successful sweep warms the cache
            load = Load(receiver.base, url, concurrency=2, limit=40, jobs=live)
            await load.run()
            await wait_drained(receiver.base)
            samples = await asyncio.to_thread(metrics, receiver.base)
            text = await asyncio.to_thread(
                lambda: httpx.get(f"{receiver.base}/metrics", timeout=5).text
            )
            logs = receiver.logs()

    def value(name: str, **labels: str) -> float:
        return sum(
            found
            for (sample, sample_labels), found in samples.items()
            if sample == name and set(labels.items()) <= set(sample_labels)
        )

    assert (bad.status_code, malformed.status_code, unknown.status_code) == (401, 400, 200)
    accepted = len(load.acked) + 1
    assert value("receiver_callbacks_total", outcome="accepted", reason="ok") == accepted
    assert value("receiver_callbacks_total", outcome="rejected", reason="bad_signature") == 1
    assert value("receiver_callbacks_total", outcome="rejected", reason="invalid_json") == 1
    assert (
        value("receiver_signature_matches_total", auth_type="MSS_A_HEAD", rule="host_path_query")
        == accepted + 1  # the malformed body had a valid signature
    )
    assert value("receiver_callback_seconds_count") == accepted + 2
    assert ("receiver_intake_depth", ()) in samples
    assert ("receiver_intake_oldest_age_seconds", ()) in samples
    assert value("receiver_intake_depth") == 0
    assert value("receiver_ready", check="intake") == 1
    assert value("receiver_events_delivered_total") == accepted
    assert value("receiver_sink_publish_seconds_count", sink="out") == accepted
    assert value("receiver_sink_failures_total", sink="broken") >= 2 * accepted
    assert value("receiver_dead_letters_total", sink="broken", reason="exhausted") == accepted
    cache_hits = value("receiver_enrichment_total", status="ok", source="cache")
    api_answers = value("receiver_enrichment_total", source="api")
    assert cache_hits > 0 and api_answers > 0
    assert value("receiver_enrichment_total", status="not_found") == 1
    ratio = cache_hits / value("receiver_enrichment_total")
    assert 0 < ratio < 1
    assert value("receiver_metastudio_api_calls_total", operation="list_jobs", outcome="ok") >= 1
    errors = sum(
        found
        for (sample, labels), found in samples.items()
        if sample == "receiver_metastudio_api_calls_total" and ("outcome", "ok") not in labels
    )
    assert errors >= 1, "the failing first sweep is not counted"
    assert not scan_for_secrets({"metrics": text, "log": logs}, [KEY, SIM_SK, *job_secrets(jobs)])
    records = [orjson.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert len(records) == len(logs.splitlines()), "a log line is not JSON"
    access = [r for r in records if r["logger"] == "receiver.access"]
    assert len(access) == accepted + 2
    assert all(r["request_id"] and "event_id" in r for r in access)
    assert all(r["event_id"] for r in access if r["status"] == 200)
    dead = [r for r in records if r["message"] == "dead-lettered"]
    assert dead and all(r["event_id"] for r in dead)


async def test_key_rotation_through_the_keys_file_without_restart(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"{KEY}\n")
    port = new_port()
    auth = f'type = ["MSS_A_HEAD"]\nkeys_file = "{keys_file}"\n'
    config = receiver_config(tmp_path, port, auth=auth)
    url = f"http://127.0.0.1:{port}{PATH}"
    async with serving(config, port) as receiver, httpx.AsyncClient(base_url=receiver.base) as http:

        async def post(key: str, n: int) -> httpx.Response:
            body = callback_body(reply_id=f"rotation-{n}-{key[:4]}")
            return await http.post(PATH, content=body, headers=signed_headers(url, key))

        assert (await post(KEY, 0)).status_code == 200
        before = await post(NEW_KEY, 0)
        assert before.status_code == 401 and before.json()["error"] == "bad_signature"
        staged = tmp_path / "keys.new"  # replaced in one step, as a Secret mount does
        staged.write_text(f"{NEW_KEY}\n")
        os.replace(staged, keys_file)
        started = time.monotonic()
        while (await post(NEW_KEY, 1)).status_code != 200:
            assert time.monotonic() - started < 6, "the new key was not picked up"
            await asyncio.sleep(0.2)
        took = time.monotonic() - started
        old = await post(KEY, 2)
        assert old.status_code == 401 and old.json()["error"] == "bad_signature"
        reloads = await asyncio.to_thread(
            metric, receiver.base, "receiver_callback_key_reloads_total", outcome="reloaded"
        )
        assert receiver.process is not None and receiver.process.poll() is None
        logs = receiver.logs()
    print(f"key rotation picked up after {took:.1f} s")
    assert reloads >= 1
    assert not scan_for_secrets({"log": logs}, [KEY, NEW_KEY])
