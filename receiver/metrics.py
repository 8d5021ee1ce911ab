"""Prometheus metrics of one receiver instance, in a registry of its own.

Counters and histograms are updated from the event loop only (see
:mod:`receiver.loopmetrics`); the gauges are prometheus_client's own.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from receiver.loopmetrics import LoopCounter, LoopHistogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """Every metric the receiver exports; names start with ``receiver_``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = LoopCounter(
            "receiver_callbacks",
            "Callback requests by outcome and reason",
            ["outcome", "reason"],
            registry=r,
        )
        self.signature_rule = LoopCounter(
            "receiver_signature_matches",
            "Valid signatures by auth type and signing rule",
            ["auth_type", "rule"],
            registry=r,
        )
        self.duplicate_callbacks = LoopCounter(
            "receiver_duplicate_callbacks",
            "Signed callbacks answered duplicate: a replay, or two equal bodies in one second",
            ["auth_type"],
            registry=r,
        )
        self.request_seconds = LoopHistogram(
            "receiver_callback_seconds",
            "Time to answer a callback",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.intake_depth = Gauge(
            "receiver_intake_depth", "Accepted events not yet delivered everywhere", registry=r
        )
        self.intake_oldest = Gauge(
            "receiver_intake_oldest_age_seconds", "Age of the oldest pending event", registry=r
        )
        self.ready = Gauge(
            "receiver_ready",
            "1 while a /readyz check passes: intake, or sink:<name> of a critical sink",
            ["check"],
            registry=r,
        )
        self.access_log_dropped = LoopCounter(
            "receiver_access_log_dropped_lines",
            "Access-log lines dropped because standard error did not keep up",
            registry=r,
        )
        self.journal_dropped = LoopCounter(
            "receiver_journal_dropped_entries",
            "Journal entries (console history, rooms, callback memory) dropped: buffer full "
            "or entry too large",
            registry=r,
        )
        self.events_delivered = LoopCounter(
            "receiver_events_delivered",
            "Events removed from the intake after delivery",
            registry=r,
        )
        self.sink_publish_seconds = LoopHistogram(
            "receiver_sink_publish_seconds",
            "Time of one successful publish",
            ["sink"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.sink_failures = LoopCounter(
            "receiver_sink_failures", "Failed publish attempts", ["sink", "retryable"], registry=r
        )
        self.dead_letters = LoopCounter(
            "receiver_dead_letters", "Events dead-lettered", ["sink", "reason"], registry=r
        )
        self.enrichment = LoopCounter(
            "receiver_enrichment",
            "Enrichment results by status and source",
            ["status", "source"],
            registry=r,
        )
        self.route_condition_errors = LoopCounter(
            "receiver_route_condition_errors",
            "Route conditions that erred on an event (the route did not match), by route index",
            ["route"],
            registry=r,
        )
        self.api_calls = LoopCounter(
            "receiver_metastudio_api_calls",
            "MetaStudio API calls by operation and outcome",
            ["operation", "outcome"],
            registry=r,
        )
        self.key_reloads = LoopCounter(
            "receiver_callback_key_reloads",
            "Reloads of the callback key file",
            ["outcome"],
            registry=r,
        )
        self.missed_callbacks = LoopCounter(
            "receiver_reconcile_missed_callbacks",
            "Callbacks reported missed by the job watcher, by the event type expected",
            ["expected"],
            registry=r,
        )
        self.misrouted_jobs = LoopCounter(
            "receiver_reconcile_misrouted_jobs",
            "Jobs whose callbacks do not reach this receiver as accepted, once per job",
            ["reason"],
            registry=r,
        )
