"""Loop metrics: what a scrape shows for counters and histograms updated without locks."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from receiver.loopmetrics import LoopCounter, LoopHistogram


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counter_with_and_without_labels() -> None:
    registry = CollectorRegistry()
    requests = LoopCounter("demo_requests", "Requests", ["outcome"], registry=registry)
    total = LoopCounter("demo_events", "Events", registry=registry)
    requests.labels("accepted").inc()
    requests.labels("accepted").inc(2)
    requests.labels("rejected").inc()
    total.inc(5)
    found = samples(registry)
    assert found[("demo_requests_total", (("outcome", "accepted"),))] == 3
    assert found[("demo_requests_total", (("outcome", "rejected"),))] == 1
    assert found[("demo_events_total", ())] == 5


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    registry = CollectorRegistry()
    latency = LoopHistogram(
        "demo_seconds", "Latency", ["sink"], buckets=(0.1, 1, 10), registry=registry
    )
    for value in (0.05, 0.1, 0.5, 3, 30):
        latency.labels("out").observe(value)
    found = samples(registry)

    def bucket(le: str) -> float:
        return found[("demo_seconds_bucket", (("le", le), ("sink", "out")))]

    assert [bucket(le) for le in ("0.1", "1.0", "10.0", "+Inf")] == [2, 3, 4, 5]
    assert found[("demo_seconds_count", (("sink", "out"),))] == 5
    assert found[("demo_seconds_sum", (("sink", "out"),))] == pytest.approx(33.65)


def test_wrong_number_of_label_values_is_refused() -> None:
    counter = LoopCounter("demo_x", "X", ["a", "b"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("only-one")
