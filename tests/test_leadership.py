"""One deployment, one set of job sweeps and one API budget, split across live replicas."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from receiver.config import MetaStudioSettings, Settings
from receiver.enrichment import build_enricher
from receiver.intake import build_intake
from receiver.intake.partitions import PartitionLeases
from receiver.metastudio.client import MetaStudioClient
from receiver.metrics import Metrics
from receiver.reconcile.runner import Reconciler
from receiver.service import ReceiverService


class Store:
    async def acquire(self, partition: int) -> bool:
        return True

    async def renew(self, partition: int) -> bool:
        return True

    async def release(self, partition: int) -> None:
        return None

    async def heartbeat(self) -> int:
        return 1

    async def leave(self) -> None:
        return None


async def _nothing(_partition: int) -> None:
    return None


def leases(holding: list[int], live: int) -> PartitionLeases:
    """Leases that hold ``holding`` (valid for a minute) among ``live`` replicas."""
    made = PartitionLeases(
        Store(), partitions=4, ttl=3.0, replica_id="r", drain_seconds=1.0,
        on_acquired=_nothing, on_lost=lambda _p: None, in_hand=lambda _p: 0,
    )  # fmt: skip
    made._valid_until = {p: time.monotonic() + 60 for p in holding}
    made.live = live
    return made


def settings(tmp_path: Path, **sections: Any) -> Settings:
    return Settings(
        intake={"backend": "sqlite", "path": tmp_path / "intake.db"},
        dead_letters={"path": tmp_path / "dead.db"},
        metastudio=MetaStudioSettings(
            endpoint="http://127.0.0.1:9", project_id="p", ak=SecretStr("a"), sk=SecretStr("s")
        ),
        **sections,
    )


def test_a_single_node_leads_and_a_replica_leads_with_partition_0(tmp_path: Path) -> None:
    intake = build_intake(settings(tmp_path).intake)
    assert intake.leads() and intake.live_replicas() == 1
    intake.leases = leases([1, 2], live=3)
    assert not intake.leads() and intake.live_replicas() == 3
    intake.leases = leases([0], live=3)
    assert intake.leads()


async def test_only_the_leader_sweeps_jobs(tmp_path: Path) -> None:
    config = settings(tmp_path, reconcile={"enabled": True, "interval_seconds": 0.01})
    intake = build_intake(config.intake)
    intake.leases = leases([3], live=2)
    client = MetaStudioClient(config.metastudio)
    reconciler = Reconciler(config, intake, client)
    sweeps: list[float] = []

    async def counted() -> bool:
        sweeps.append(time.monotonic())
        return True

    reconciler.sweep_once = counted  # type: ignore[method-assign]
    reconciler.start()
    await asyncio.sleep(0.1)
    assert sweeps == []  # not the leader
    intake.leases = leases([0, 3], live=2)
    await asyncio.sleep(0.1)
    await reconciler.stop()
    await client.aclose()
    assert sweeps  # the leader now


async def test_the_enrichment_sweep_runs_on_the_leader_only(tmp_path: Path) -> None:
    config = settings(tmp_path, enrichment={"enabled": True, "sweep_interval_seconds": 0.01})
    leading = False
    enricher = build_enricher(config, Metrics(), leads=lambda: leading)
    assert enricher is not None
    swept: list[int] = []

    async def sweep() -> None:
        swept.append(1)

    enricher.cache.sweep = sweep  # type: ignore[method-assign]
    await enricher.start()
    await asyncio.sleep(0.1)
    assert swept == []
    leading = True
    await asyncio.sleep(0.1)
    await enricher.close()
    assert swept


def test_each_replica_takes_its_share_of_the_api_budget(tmp_path: Path) -> None:
    config = settings(tmp_path, enrichment={"enabled": True})
    service = ReceiverService(config)
    assert service.metastudio is not None
    service.share_api_budget()
    assert service.metastudio.limiter.rate == 10.0
    service.intake.leases = leases([0], live=4)
    service.share_api_budget()
    assert service.metastudio.limiter.rate == 2.5
