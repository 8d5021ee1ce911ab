"""``receiver check`` lists the jobs whose callbacks do not reach this receiver."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from receiver.cli import main
from receiver.simulator import create_api_app, generate_jobs
from tests.helpers import write_config

from ..simulator.conftest import AK, PROJECT_ID, SK, serve

PORT = 8997
OURS = f"http://127.0.0.1:{PORT}/callbacks/metastudio"


def test_check_lists_a_job_registered_with_another_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = generate_jobs(5, 9, PROJECT_ID, callback_url=OURS + "?token=ours")
    jobs[0]["room_name"] = "evil\x1b[31mroom\nnext"
    other = str(jobs[0]["job_id"])
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK)) as api:
        config = {
            "live_event_type_callback_url": "https://other.example/cb?token=t0ps3cret",
            "auth_type": "NONE",
            "key": "k3y-s3cret",
        }
        answer = httpx.post(
            f"{api}/_sim/jobs/{other}/state",
            json={"state": "PROCESSING", "live_event_callback_config": config},
        )
        assert answer.status_code == 200
        extra = (
            f'[metastudio]\nendpoint = "{api}"\nproject_id = "{PROJECT_ID}"\n'
            f'ak = "{AK}"\nsk = "{SK}"\n'
        )
        path = write_config(tmp_path, PORT, extra=extra)
        assert main(["check", "--config", str(path)]) == 0  # a warning, not a failure
    out = capsys.readouterr().out
    assert "WARN misrouted jobs: 1 of 5 jobs listed" in out
    (line,) = [line for line in out.splitlines() if line.startswith("WARN misrouted job:")]
    room = jobs[0]["room_id"]
    assert line == (
        f"WARN misrouted job: room {room} (evil?[31mroom?next), job {other}: "
        "callbacks go to https://other.example/cb?[redacted] with NONE"
    )
    assert "t0ps3cret" not in out and "k3y-s3cret" not in out
