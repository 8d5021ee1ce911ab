"""Three replicas share one MetaStudio budget: the simulator never throttles them.

The simulator allows 8 requests/s (its ``rate_limit``, as MetaStudio's tenant limit), the
deployment's ``metastudio.rate_limit_per_second`` is 6: each replica takes 2/s. Without the
split each would take 6/s, 18 in all, and the simulator would answer 429.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.simulator import create_api_app, generate_jobs
from tests.brokers import REDIS, REDIS_URL, require_service, unique
from tests.helpers import KEY, ReceiverProcess, free_port
from tests.replicas.common import file_sink_config
from tests.simulator.conftest import AK, PROJECT_ID, SK, serve

TENANT_LIMIT = 8.0
BUDGET = 6.0
JOBS = 200


def config(directory: Path, index: int, port: int, public_url: str, api: str, out: str) -> Path:
    head = f"""
[server]
host = "127.0.0.1"
port = {port}
public_url = "{public_url}"
graceful_shutdown_seconds = 2

[auth]
type = ["MSS_A_HEAD"]
keys = ["{KEY}"]

[intake]
backend = "redis"
url = "{REDIS_URL}"
stream = "{out}"
partitions = 6
lease_ttl_seconds = 1.5

"""
    middle = f"""
[metastudio]
endpoint = "{api}"
project_id = "{PROJECT_ID}"
ak = "{AK}"
sk = "{SK}"
rate_limit_per_second = {BUDGET}

[enrichment]
enabled = true
ttl_seconds = 1
negative_ttl_seconds = 1
sweep_interval_seconds = 1
deadline_seconds = 20

"""
    return file_sink_config(directory, index, head, middle)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[list[ReceiverProcess], str, object]]:
    require_service("redis", REDIS)
    jobs = generate_jobs(JOBS, 1, PROJECT_ID)
    app = create_api_app(jobs, PROJECT_ID, AK, SK, rate_limit=TENANT_LIMIT)
    with serve(app) as api:
        ports = [free_port() for _ in range(3)]
        public_url = f"http://127.0.0.1:{ports[0]}/callbacks/metastudio"
        out = unique("test-budget-")
        processes = [
            ReceiverProcess(config(tmp_path, i, port, public_url, api, out), port)
            for i, port in enumerate(ports)
        ]
        try:
            for process in processes:
                process.start()
            yield processes, public_url, app
        finally:
            for process in processes:
                if process.process is not None and process.process.poll() is None:
                    process.terminate()


def test_three_replicas_stay_within_the_tenant_rate(
    replicas: tuple[list[ReceiverProcess], str, object],
) -> None:
    _processes, public_url, app = replicas
    stats = app.state.sim.stats  # type: ignore[attr-defined]
    time.sleep(3)  # heartbeats: every replica counts three live ones
    before, started = sum(stats.calls.values()), time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "receiver.cli", "simulate", "send", "--url", public_url,
         "--key", KEY, "--auth", "MSS_A_HEAD", "--scenario", "live-session",
         "--project-id", PROJECT_ID, "--jobs", str(JOBS), "--seed", "1", "--rooms", "60",
         "--rate", "60", "--count", "360"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    time.sleep(2)
    calls, elapsed = sum(stats.calls.values()) - before, time.monotonic() - started
    # Enough demand to need more than the budget: far more distinct jobs than calls allowed.
    assert calls >= BUDGET * elapsed * 0.5, (calls, elapsed)
    assert calls <= BUDGET * elapsed + 3 * 2, (calls, elapsed)  # a burst of one per replica
    assert stats.statuses.get("429", 0) == 0, stats.as_dict()
