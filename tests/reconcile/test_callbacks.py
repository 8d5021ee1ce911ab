"""The per-job record of accepted callbacks: what it keeps, its bounds, its persistence."""

from __future__ import annotations

from pathlib import Path

from receiver.reconcile.callbacks import MAX_JOB_ID_CHARS, CallbackLog
from receiver.reconcile.state import MemoryStateStore, SqliteStateStore

RTMP = "RTMP_STREAM_STATE_CHANGE"


def test_counts_documented_types_and_the_last_stream_state() -> None:
    log = CallbackLog()
    log.record("j1", RTMP, "CONNECTED", 10.0)
    log.record("j1", "REPLY_COMMAND_FINISH", None, 11.0)
    log.record("j1", RTMP, "END", 12.0)
    log.record("j1", "MADE_UP_TYPE", "END", 13.0)  # unknown types are not counted
    log.record("j1", RTMP, "\x1bweird", 14.0)  # nor undocumented states kept
    entry = log.get("j1")
    assert entry is not None
    assert entry.counts == {RTMP: 3, "REPLY_COMMAND_FINISH": 1}
    assert (entry.last_stream_state, entry.last_stream_state_at) == ("END", 12.0)


def test_hostile_job_ids_stay_within_the_cap() -> None:
    log = CallbackLog(max_jobs=50)
    listed = log.listed_job("real", "room-1", 0.0)
    for number in range(10_000):
        log.record(f"forged-{number}", RTMP, "CONNECTED", float(number))
    log.record("x" * (MAX_JOB_ID_CHARS + 1), RTMP, "END", 1.0)
    log.record("real", RTMP, "END", 2.0)
    assert len(log.unlisted) == 50 and len(log) == 51
    assert "forged-0" not in log.unlisted and "forged-9999" in log.unlisted
    assert log.get("x" * (MAX_JOB_ID_CHARS + 1)) is None
    # A job the watcher listed is not pushed out by callbacks naming unknown jobs.
    assert log.get("real") is listed and listed.last_stream_state == "END"


def test_jobs_that_ended_long_ago_are_forgotten() -> None:
    log = CallbackLog(forget_after=100.0)
    log.record("old", RTMP, "END", 0.0)
    log.listed_job("old", "room", 0.0).ended_at = 10.0
    log.record("live", RTMP, "CONNECTED", 150.0)
    log.listed_job("live", "room", 150.0)
    log.record("stale", RTMP, "CONNECTED", 20.0)
    log.forget(200.0)
    assert log.get("old") is None and log.get("stale") is None
    assert log.get("live") is not None


async def test_records_survive_a_restart_in_both_stores(tmp_path: Path) -> None:
    for store in (MemoryStateStore(), SqliteStateStore(tmp_path / "state.db")):
        log = CallbackLog()
        log.record("j1", RTMP, "CONNECTED", 10.0)
        log.listed_job("j1", "room-1", 11.0).processing_since = 5.0
        log.record("j2", "SHOOT_SCRIPT_SWITCH", None, 12.0)
        await store.save_callbacks(log.snapshot())
        restarted = CallbackLog()
        # Before the first sweep: the journal again (the CONNECTED counted before), then END.
        restarted.record("j1", RTMP, "CONNECTED", 10.0)
        restarted.record("j1", RTMP, "END", 20.0)
        restarted.restore(await store.load_callbacks())
        j1, j2 = restarted.get("j1"), restarted.get("j2")
        assert j1 is not None and j2 is not None
        assert "j1" in restarted.listed and "j2" in restarted.unlisted
        assert j1.counts == {RTMP: 2} and j1.last_stream_state == "END"  # not 3
        assert (j1.room_id, j1.processing_since) == ("room-1", 5.0)
        assert j2.counts == {"SHOOT_SCRIPT_SWITCH": 1}
