"""One running receiver: intake, sinks, pipeline and the callback endpoint, started together.

Start order: intake (so nothing is accepted before it is durable), dead letters, sinks,
pipeline; stop order is the reverse, with the pipeline drained for a while first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from receiver.accesslog import AccessLog
from receiver.authentication import Authenticator
from receiver.callback import CallbackHandler
from receiver.config import Settings
from receiver.console.recorder import ConsoleRecorder
from receiver.deadletters.factory import build_dead_letters, shared_backend
from receiver.deadletters.migrate import move_local_letters
from receiver.endpoint import CallbackEndpoint
from receiver.enrichment import build_enricher, shared_client
from receiver.intake import Intake, build_intake
from receiver.journal import JournalFold, JournalWriter, build_journal
from receiver.keyring import KeyRing
from receiver.metrics import Metrics
from receiver.pipeline import Pipeline
from receiver.reconcile.callbacks import CallbackLog
from receiver.reconcile.runner import build_reconciler
from receiver.routing import Router
from receiver.sinks import Sink, build_sink
from receiver.tasks import stop_task
from receiver.tracing import Tracing, build_tracing

log = logging.getLogger("receiver.service")

_MAINTENANCE_SECONDS = 2.0


class ReceiverService:
    """Everything one receiver process runs, built from validated settings."""

    def __init__(self, settings: Settings, tracing: Tracing | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.tracing = tracing or build_tracing(settings.tracing)
        self.keys = KeyRing(settings.auth)
        self.intake: Intake = build_intake(settings.intake)
        self.sinks: dict[str, Sink] = {item.name: build_sink(item) for item in settings.sinks}
        self.dead_letters = build_dead_letters(settings)
        self.access_log = (
            AccessLog(settings.logging.format, on_drop=self.metrics.access_log_dropped.inc)
            if settings.server.access_log
            else None
        )
        self.metastudio = shared_client(settings)
        self.enricher = build_enricher(
            settings, self.metrics, self.metastudio, leads=self.intake.leads
        )
        reconcile = settings.reconcile
        self.callback_log = (
            CallbackLog(reconcile.max_callback_jobs, reconcile.forget_after_seconds)
            if reconcile.enabled and self.metastudio is not None
            else None
        )
        self.reconciler = build_reconciler(
            settings, self.intake, self.metastudio, self.metrics, self.callback_log
        )
        self.console = ConsoleRecorder(settings.admin) if settings.admin.enabled else None
        self.journal = (
            build_journal(settings, self.metrics.journal_dropped.inc)
            if self.console is not None or self.callback_log is not None
            else None
        )
        self.pipeline = Pipeline(
            self.intake,
            self.sinks,
            Router(settings.routes, self._count_condition_error),
            self.dead_letters,
            settings.pipeline,
            self.metrics,
            enrich=self.enricher.enrich if self.enricher else None,
            enrichment=settings.enrichment,
            sink_settings=settings.sinks,
            tracing=self.tracing,
            observer=JournalWriter(self.journal) if self.journal is not None else None,
        )
        self.callbacks = CallbackHandler(
            self._authenticator(),
            self.intake,
            self.metrics,
            source=settings.server.callback_url.split("?", 1)[0],
            max_body_bytes=settings.server.max_body_bytes,
            max_header_bytes=settings.server.max_header_bytes,
            body_timeout_seconds=settings.server.body_timeout_seconds,
            replay_seconds=settings.auth.tolerance_seconds + 1,
            access_log=self.access_log,
            tracing=self.tracing,
        )
        self.endpoint = CallbackEndpoint(self.callbacks)
        self._maintenance: asyncio.Task[None] | None = None
        self.started = False
        self.stopping = False

    def _count_condition_error(self, route: int, _error: str) -> None:
        self.metrics.route_condition_errors.labels(str(route)).inc()

    def _authenticator(self) -> Authenticator:
        return Authenticator(self.settings.auth, self.settings.server.callback_url, self.keys.keys)

    async def start(self) -> None:
        """Open the intake, the sinks and the enrichment, then start the pipeline."""
        await self.intake.start()
        if shared_backend(self.settings):
            await move_local_letters(self.settings.dead_letters.path, self.dead_letters)
        for sink in self.sinks.values():
            await sink.start()
        if self.enricher is not None:
            await self.enricher.start()
        if self.journal is not None:
            self.journal.start(JournalFold(self.console, self.callback_log))
        self.pipeline.start()
        if self.reconciler is not None:
            self.reconciler.start()
        self._maintenance = asyncio.get_running_loop().create_task(self._maintain())
        self.started = True
        log.info(
            "receiver started",
            extra={
                "callback_url": self.settings.server.callback_url.split("?", 1)[0],
                "auth": [t.value for t in self.settings.auth.type],
                "intake": self.settings.intake.backend,
                "sinks": list(self.sinks),
                "pending": self.intake.depth(),
            },
        )

    async def stop(self) -> None:
        """Drain the pipeline for up to the graceful time, then close everything."""
        self.stopping = True
        await stop_task(self._maintenance)
        if self.reconciler is not None:
            await self.reconciler.stop()
        await self.pipeline.stop(self.settings.server.graceful_shutdown_seconds)
        if self.journal is not None:
            with contextlib.suppress(Exception):  # a broker gone: the history goes with it
                await asyncio.wait_for(self.journal.close(), 15.0)  # its own steps are bounded
        if self.enricher is not None:
            await self.enricher.close()
        elif self.metastudio is not None:
            await self.metastudio.aclose()
        for sink in self.sinks.values():
            # bounded: a broker client must not stall the shutdown
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sink.close(), 10.0)
        await self.dead_letters.close()
        await self.intake.close()
        if self.access_log is not None:
            self.access_log.close()
        self.tracing.shutdown()
        log.info("receiver stopped", extra={"pending": self.intake.depth()})

    def ready(self) -> tuple[bool, dict[str, bool]]:
        """Readiness: started, not stopping, intake usable, every critical sink reachable."""
        checks = {"intake": self.intake.is_ready()}
        checks.update(
            {f"sink:{name}": sink.is_ready() for name, sink in self.sinks.items() if sink.critical}
        )
        return self.started and not self.stopping and all(checks.values()), checks

    def reload_keys(self) -> bool:
        """Swap in a new authenticator if the key file changed."""
        try:
            changed = self.keys.reload()
        except (OSError, ValueError) as error:
            self.metrics.key_reloads.labels("failed").inc()
            log.warning("callback key file not reloaded", extra={"error": type(error).__name__})
            return False
        if changed:
            self.callbacks.authenticator = self._authenticator()
            self.metrics.key_reloads.labels("reloaded").inc()
        return changed

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(_MAINTENANCE_SECONDS)
            self.reload_keys()
            with contextlib.suppress(Exception):
                await self.intake.refresh_stats()
            self.metrics.intake_depth.set(self.intake.depth())
            self.metrics.intake_oldest.set(self.intake.oldest_age(time.time()))
            for check, passed in self.ready()[1].items():
                self.metrics.ready.labels(check).set(1 if passed else 0)
            self.share_api_budget()

    def share_api_budget(self) -> None:
        """Each replica takes ``rate_limit_per_second / live replicas`` of the tenant's budget."""
        if self.metastudio is not None:
            budget = self.settings.metastudio.rate_limit_per_second
            self.metastudio.limiter.rate = budget / self.intake.live_replicas()
