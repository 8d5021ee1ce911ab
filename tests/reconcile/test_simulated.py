"""The reconciler against the simulated MetaStudio API over HTTP, into a sqlite intake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from receiver.config import EnrichmentSettings, MetaStudioSettings, Settings
from receiver.intake import IntakeUnavailable, build_intake
from receiver.metastudio.client import MetaStudioClient
from receiver.reconcile.runner import Reconciler, build_reconciler
from receiver.service import ReceiverService
from receiver.simulator import create_api_app, generate_jobs

from ..simulator.conftest import AK, PROJECT_ID, SK, serve


def settings_for(url: str, tmp_path: Path) -> Settings:
    return Settings(
        intake={"backend": "sqlite", "path": tmp_path / "intake.db"},
        metastudio=MetaStudioSettings(
            endpoint=url, project_id=PROJECT_ID, ak=SecretStr(AK), sk=SecretStr(SK)
        ),
        reconcile={"enabled": True},
    )


async def test_transitions_reach_the_intake_once_across_a_restart(tmp_path: Path) -> None:
    jobs = generate_jobs(12, 3, PROJECT_ID)
    job_id = str(jobs[0]["job_id"])
    jobs[0].update(state="SUCCEED", lastupdate_time="2026-01-01T00:00:00.000Z")
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK)) as url:
        settings = settings_for(url, tmp_path)
        intake = build_intake(settings.intake)
        await intake.start()
        client = MetaStudioClient(settings.metastudio)
        try:
            reconciler = build_reconciler(settings, intake, client)
            assert isinstance(reconciler, Reconciler)
            await reconciler.watcher.sweep()  # first run: records only
            async with httpx.AsyncClient(base_url=url) as admin:
                for state in ("WAITING", "PROCESSING", "BLOCKED", "SUCCEED"):
                    answer = await admin.post(f"/_sim/jobs/{job_id}/state", json={"state": state})
                    assert answer.status_code == 200
                    await reconciler.watcher.sweep()
            # A restarted replica reads the saved state and emits nothing again.
            assert await Reconciler(settings, intake, client).watcher.sweep() == 0
            records = await intake.take(100, 0.5)
        finally:
            await client.aclose()
            await intake.close()
    events: list[dict[str, Any]] = [orjson.loads(r.payload) for r in records]
    mine = [e["data"] for e in events if e["jobid"] == job_id]
    assert [(d["previous_state"], d["state"]) for d in mine] == [
        ("SUCCEED", "WAITING"),
        ("WAITING", "PROCESSING"),
        ("PROCESSING", "BLOCKED"),
        ("BLOCKED", "SUCCEED"),
    ]
    assert mine[-1]["misrouted"].startswith("callbacks go to")
    assert mine[-1]["end_time"] and mine[-1]["duration"] is not None
    key = jobs[0].get("live_event_callback_config", {}).get("key")
    assert not key or key not in str(events)


def test_the_service_shares_one_client_with_enrichment(tmp_path: Path) -> None:
    settings = settings_for("http://127.0.0.1:9", tmp_path).model_copy(
        update={"enrichment": EnrichmentSettings(enabled=True)}
    )
    service = ReceiverService(settings)
    assert service.reconciler is not None
    assert service.enricher is not None
    assert service.reconciler.watcher.client is service.metastudio
    assert service.enricher._client is service.metastudio


async def test_a_sweep_whose_intake_fails_is_retried_by_the_next(tmp_path: Path) -> None:
    jobs = generate_jobs(6, 2, PROJECT_ID)
    job_id = str(jobs[0]["job_id"])
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK)) as url:
        settings = settings_for(url, tmp_path)
        intake = build_intake(settings.intake)
        await intake.start()
        client = MetaStudioClient(settings.metastudio)
        try:
            reconciler = build_reconciler(settings, intake, client)
            assert isinstance(reconciler, Reconciler)
            assert await reconciler.sweep_once()  # first run: records only
            async with httpx.AsyncClient(base_url=url) as admin:
                answer = await admin.post(f"/_sim/jobs/{job_id}/state", json={"state": "FAILED"})
                assert answer.status_code == 200
            appended = reconciler.intake.append

            async def unavailable(*_args: Any, **_kwargs: Any) -> bool:
                raise IntakeUnavailable("down")

            reconciler.intake.append = unavailable  # type: ignore[method-assign]
            assert not await reconciler.sweep_once()
            reconciler.intake.append = appended  # type: ignore[method-assign]
            assert await reconciler.sweep_once()
            records = await intake.take(100, 0.5)
        finally:
            await client.aclose()
            await intake.close()
    states = [orjson.loads(r.payload)["data"]["state"] for r in records]
    assert states == ["FAILED"]
