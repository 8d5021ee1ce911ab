"""The reconciler: runs the job watcher every ``reconcile.interval_seconds``.

Its events go through the intake like callbacks (durable, routed, retried, dead-lettered);
their stable ids make the intake's replay window drop an event emitted twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import orjson

from receiver.config import Settings
from receiver.intake import Intake
from receiver.metastudio.client import MetaStudioClient
from receiver.metastudio.errors import MetaStudioError
from receiver.metrics import Metrics
from receiver.reconcile.callbacks import CallbackLog
from receiver.reconcile.shared import NatsStateStore, RedisStateStore
from receiver.reconcile.state import SqliteStateStore, StateStore
from receiver.reconcile.watcher import JobWatcher
from receiver.tasks import stop_task

log = logging.getLogger("receiver.reconcile")


def state_path(intake_path: Path) -> Path:
    """The watcher's sqlite state file, next to the sqlite intake."""
    return intake_path.with_name(intake_path.stem + "-reconcile.db")


def build_store(settings: Settings) -> StateStore:
    """The state store of the intake backend: a sqlite file, a Redis key or a NATS bucket."""
    intake = settings.intake
    if intake.backend == "redis":
        return RedisStateStore(intake.url, intake.stream)
    if intake.backend == "nats":
        return NatsStateStore(intake.url, intake.stream)
    return SqliteStateStore(state_path(intake.path))


class Reconciler:
    """Appends the watcher's events to the intake, one sweep every interval."""

    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        client: MetaStudioClient,
        metrics: Metrics | None = None,
        callbacks: CallbackLog | None = None,
    ) -> None:
        self.intake = intake
        self.interval = settings.reconcile.interval_seconds
        self.replay_seconds = settings.reconcile.replay_seconds
        self.watcher = JobWatcher(
            settings.reconcile,
            client,
            build_store(settings),
            self._append,
            callback_url=settings.server.callback_url,
            accepted_auth=[kind.value for kind in settings.auth.type],
            callbacks=callbacks,
            metrics=metrics,
        )
        self._task: asyncio.Task[None] | None = None

    async def _append(self, envelope: dict[str, Any]) -> None:
        now = time.time()
        await self.intake.append(
            envelope["id"],
            envelope["roomid"] or envelope["jobid"],
            now,
            orjson.dumps(envelope),
            now + self.replay_seconds,
            envelope,
        )

    async def _run(self) -> None:
        while True:
            if self.intake.leads():  # one watcher per deployment
                await self.sweep_once()
            await asyncio.sleep(self.interval)

    async def sweep_once(self) -> bool:
        """One sweep; False when it failed (logged; the next interval sweeps again).

        Any failure, of the API or of the intake (full, unavailable, unexpected), leaves
        the saved state as it was: the next sweep lists the same changes again, and their
        stable ids drop what was already appended.
        """
        try:
            await self.watcher.sweep()
        except MetaStudioError as error:
            log.warning("job reconcile sweep failed", extra={"error": str(error)})
            return False
        except Exception as error:  # one sweep's failure must not end the loop
            log.warning("job reconcile sweep failed", extra={"error": type(error).__name__})
            return False
        return True

    def start(self) -> None:
        """Start sweeping in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop sweeping (a sweep under way is cancelled; its state was not saved)."""
        await stop_task(self._task)
        try:
            await self.watcher.store.close()
        except Exception as error:  # a broker gone at shutdown: nothing left to save
            log.debug("reconcile state store close failed", extra={"error": repr(error)})


def build_reconciler(
    settings: Settings,
    intake: Intake,
    client: MetaStudioClient | None,
    metrics: Metrics | None = None,
    callbacks: CallbackLog | None = None,
) -> Reconciler | None:
    """The reconciler, or None when ``reconcile.enabled`` is false.

    With ``callbacks`` (the log the callback handler records into) its events report
    missed callbacks; with ``metrics`` it counts them and the misrouted jobs.
    """
    if not settings.reconcile.enabled or client is None:
        return None
    return Reconciler(settings, intake, client, metrics, callbacks)
