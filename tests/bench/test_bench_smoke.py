"""The benchmark machinery works: request pool, signatures, generators, tables (no timings)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import breakdown, procs
from bench.cli import breakdown_table, evaluate, ingest_table, stack_table
from bench.common import Options, count_lines, parse_metrics, run_wrk, wrk_available
from bench.loadgen import Spec, run
from bench.pool import (
    CALLBACK_KEY,
    CALLBACK_PATH,
    PUBLIC_URL,
    Bodies,
    live_jobs,
    lua_script,
    pass_proofs,
    proof_at,
    write_lua,
)
from bench.report import table
from receiver.authentication import Authenticator
from receiver.config import AuthSettings, AuthType
from receiver.envelope import event_id
from receiver.events import parse_callback


def require_wrk() -> None:
    """Skip without wrk; fail instead where the services are required (CI)."""
    if not wrk_available():
        message = "wrk is not installed (apt-get install wrk)"
        if os.environ.get("REQUIRE_SERVICES", "") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[procs.Server]:
    directory = tmp_path_factory.mktemp("baseline")
    server = procs.start_baseline(procs.free_port(), directory / "baseline.log")
    try:
        yield server
    finally:
        server.stop()


def test_pool_bodies_are_unique_realistic_callbacks() -> None:
    jobs = live_jobs(20)
    bodies = Bodies(jobs, "smoke")
    pool = [next(bodies) for _ in range(2000)]
    assert len(set(pool)) == len(pool)
    assert 150 < sum(map(len, pool)) / len(pool) < 500
    kinds = {parse_callback(body).event_type for body in pool}
    assert kinds == {"SHOOT_SCRIPT_SWITCH", "REPLY_COMMAND_FINISH", "RTMP_STREAM_STATE_CHANGE"}
    rooms = {parse_callback(body).room_id for body in pool}
    assert rooms == {job.room_id for job in jobs}


def test_a_pooled_request_is_verified_and_gets_the_predicted_id() -> None:
    now = time.time()
    authenticator = Authenticator(
        AuthSettings(type=[AuthType.MSS_A_HEAD], keys=[CALLBACK_KEY]), PUBLIC_URL, [CALLBACK_KEY]
    )
    body = next(Bodies(live_jobs(5), "verify"))
    for proof in pass_proofs(now, 5):
        headers = {b"x-hw-mss-secret": proof.secret.encode(), b"x-hw-mss-time": proof.time.encode()}
        verdict = authenticator.check(headers, "", now)
        assert verdict.ok, verdict.detail
        assert event_id(body, verdict.proof) == proof.event_id(body)
    ids = {proof.event_id(body) for proof in pass_proofs(now, 5)}
    assert len(ids) == 5  # the same body under another signed time is another event


def test_lua_script_embeds_the_pool(tmp_path: Path) -> None:
    _pool, proofs = write_lua(
        tmp_path / "pool.lua", bodies=10, passes=3, threads=2, now=time.time(), salt="lua"
    )
    script = (tmp_path / "pool.lua").read_text(encoding="utf-8")
    assert script.count("]==]") == 10
    assert all(proof.secret in script for proof in proofs)
    assert CALLBACK_PATH in script and "function done(" in script
    with pytest.raises(ValueError, match="Lua"):
        lua_script([b'{"x": "]==]"}'], [proof_at(time.time())], 1)


async def test_paced_generator_against_the_baseline(baseline: procs.Server) -> None:
    cpu_before = baseline.cpu_seconds()
    report = await run(Spec(baseline.port, rate=200, duration=1.0, connections=4, jobs=5, salt="s"))
    assert report["scheduled"] == 200
    assert report["ok"] == 200, report
    assert report["statuses"] == {"200": 200}
    assert baseline.cpu_seconds() >= cpu_before
    assert baseline.rss_bytes() > 0


def test_wrk_runs_the_generated_pool(baseline: procs.Server, tmp_path: Path) -> None:
    require_wrk()
    script = tmp_path / "pool.lua"
    write_lua(script, bodies=200, passes=5, threads=1, now=time.time(), salt="wrk")
    result = run_wrk(
        baseline.base_url + CALLBACK_PATH, script, duration=1, concurrency=4, threads=1
    )
    assert result["requests"] > 0
    assert result["status_errors"] == 0


def _side(rps: float, p99: float) -> dict[str, float | int | bool | str]:
    return {
        "ok_2xx": 1000, "non_2xx": 0, "socket_errors": 0, "rps": rps, "p50_ms": 1.0,
        "p99_ms": p99, "cpu_s": 1.0, "req_per_cpu_s": rps, "rss_mb": 40.0, "accepted": 1002,
        "accepted_minus_ok": 2, "duplicates": 0, "jsonl_matches_accepted": True,
        "verified": True, "drain_s": 0.5,
    }  # fmt: skip


def test_tables_and_targets_format() -> None:
    ingest = {
        "baseline": _side(1000.0, 10.0),
        "receiver": _side(1500.0, 12.0),
        "ratios": {"rps": 1.5, "p50": 1.0, "p99": 1.2, "req_per_cpu_s": 1.5},
    }
    text = ingest_table(ingest)
    assert "ratio b/a" in text and "1.50" in text and "OK" in text
    e2e = {
        "rate": 2000.0, "achieved_rate": 1999.0, "ok_2xx": 10, "scheduled": 10, "completed": 10,
        "http_p50_ms": 1.0, "http_p99_ms": 2.0, "depth_max": 3.0, "depth_last": 0.0,
        "errors": {"rejected": 0.0}, "client_errors": {}, "cpu_per_1k_events": 0.5,
        "arrival_to_ack_p50_ms": 2.0, "arrival_to_ack_p99_ms": 9.0, "sent_to_ack_p50_ms": 2.5,
        "sent_to_ack_p99_ms": 9.5, "measured_events": 10, "missing_events": 0, "drained": True,
        "enrichment_metric": {"ok": 10.0}, "enrichment_statuses": {"ok": 10},
        "api_calls": {"list_jobs": 1}, "api_calls_per_10k": 1.0,
    }  # fmt: skip
    assert "JetStream" in stack_table(e2e, "e2e")
    targets = evaluate({"ingest": ingest, "e2e": e2e, "enrichment": e2e})
    assert {t.met for t in targets} == {True}
    assert "a" in table(["a", "b"], [["x", 1.5], ["y", 2]])
    samples = parse_metrics("# TYPE receiver_intake_depth gauge\nreceiver_intake_depth 3.0\n")
    assert samples == [("receiver_intake_depth", {}, 3.0)]


def test_breakdown_runs_each_stage_and_only_the_stored_ones_store(tmp_path: Path) -> None:
    require_wrk()
    options = Options(
        parts=("breakdown",), duration=1, warmup=0, concurrency=4, threads=1, pool=200,
        rate=100, e2e_duration=1, memory_duration=1, memory_interval=1, live_jobs=20,
        connections=2, nats_url="", workdir=tmp_path, quick=True,
    )  # fmt: skip
    results = breakdown.run(options)
    assert list(results) == [variant for variant, _ in breakdown.VARIANTS]
    for variant, item in results.items():
        assert item["ok_2xx"] > 0 and item["non_2xx"] == 0, variant
        assert item["cpu_us_per_request"] > 0 and item["exit_code"] == 0, variant
    work = tmp_path / "breakdown"
    assert not (work / "bare" / "intake.db").exists()
    assert (work / "intake" / "intake.db").exists()
    assert results["intake"]["accepted"] >= results["intake"]["ok_2xx"]
    assert count_lines(work / "full.jsonl") == results["full"]["accepted"]
    assert "added us/req" in breakdown_table(results)


def test_routing_part_compares_routers_on_pool_envelopes() -> None:
    from bench import routing

    events = routing.envelopes(500)  # the pool mixes kinds one round of 50 rooms at a time
    assert {e["data"]["event_type"] for e in events} == {
        "SHOOT_SCRIPT_SWITCH",
        "REPLY_COMMAND_FINISH",
        "RTMP_STREAM_STATE_CHANGE",
    }
    conditional = routing.routers()["conditions"][1]
    replies = [e for e in events if e["data"]["event_type"] == "REPLY_COMMAND_FINISH"]
    assert "s2" in conditional.sinks_for(replies[0])
    results = {
        name: {"what": what, "us_per_event": 1.0, "added_us": 0.0}
        for name, (what, _router) in routing.routers().items()
    }
    assert routing.routing_table(results).count("\n") == 4


def test_reconcile_part_counts_list_calls_per_sweep() -> None:
    from bench import reconcile

    results = reconcile.run()
    calls = {sweep["sweep"]: sweep["list_calls"] for sweep in results["sweeps"]}
    assert calls["quiet"] == 1  # a quiet tenant costs one call a sweep
    assert calls["200 ended"] <= 3  # 200 changed jobs: two pages of 100, one past the mark
    assert calls["first run"] <= 20  # max_pages bounds the first run
    assert results["share_of_tenant_limit"] < 0.05
    assert "list calls" in reconcile.reconcile_table(results)
