"""BrokerSink: one connection attempt at a time, a start that only logs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from receiver.sinks.base import BrokerSink, DeliveryError
from receiver.sinks.common import describe


class FlakyBroker(BrokerSink[str]):
    """Opens after ``failures`` failed attempts, each taking a moment."""

    def __init__(self, failures: int) -> None:
        super().__init__("flaky", critical=False, timeout_seconds=1.0)
        self.failures = failures
        self.attempts = 0

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        await self._link()

    async def _open(self) -> str:
        self.attempts += 1
        await asyncio.sleep(0.05)
        if self.attempts <= self.failures:
            raise DeliveryError(f"attempt {self.attempts} failed")
        return "link"


async def test_calls_queued_behind_a_failing_attempt_fail_with_it() -> None:
    sink = FlakyBroker(failures=1)
    outcomes = await asyncio.gather(*(sink._link() for _ in range(5)), return_exceptions=True)
    assert sink.attempts == 1
    assert all(isinstance(outcome, DeliveryError) for outcome in outcomes)
    assert {outcome.detail for outcome in outcomes if isinstance(outcome, DeliveryError)} == {
        "attempt 1 failed"
    }
    assert await sink._link() == "link"  # a later call tries again
    assert sink.attempts == 2


async def test_start_logs_an_unreachable_broker_under_the_sink_module(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = FlakyBroker(failures=1)
    with caplog.at_level("WARNING"):
        await sink.start()
    [record] = caplog.records
    assert record.name == __name__
    assert record.getMessage() == "sink flaky: attempt 1 failed; will retry on publish"


def test_describe_names_the_error_type_and_masks_the_url() -> None:
    url = "amqp://guest:pw-123@host/"
    assert describe(TimeoutError(), url) == "TimeoutError"
    text = describe(OSError(f"cannot reach {url}"), url)
    assert text == "OSError: cannot reach amqp://***@host/"
