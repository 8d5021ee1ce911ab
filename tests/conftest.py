"""Every envelope the pipeline hands a sink in any test is checked against its schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from receiver.pipeline.delivery import SinkDelivery
from tests.envelope_schema import envelope_errors


@pytest.fixture(autouse=True)
def _envelopes_follow_their_schema(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    invalid: list[str] = []
    deliver = SinkDelivery.deliver

    async def checked(self: SinkDelivery, batch: list[Any]) -> None:
        for event in batch:
            errors = envelope_errors(event.envelope)
            if errors:
                invalid.append(f"{event.envelope.get('id')}: {errors}")
        await deliver(self, batch)

    monkeypatch.setattr(SinkDelivery, "deliver", checked)
    yield
    assert not invalid, f"published envelopes break their schema: {invalid[:3]}"
