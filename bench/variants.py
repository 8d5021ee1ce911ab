"""The receiver with its storage left out: ``python -m bench.variants CONFIG``.

For the cost breakdown (``bench/breakdown.py``): callbacks are read, verified, parsed,
turned into envelopes, answered, counted and logged exactly as by ``receiver serve``, but
the intake stores nothing: it answers "stored" at the end of the event loop's iteration,
as the durable intake answers a whole batch at once. The other variants of the breakdown
are ``receiver serve`` with other settings.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import receiver.service
from receiver.config import IntakeSettings, load_settings
from receiver.intake import Intake, IntakeRecord
from receiver.intake.base import AppendDone
from receiver.server import serve


class NothingStored(Intake):
    """An intake that keeps nothing and hands nothing to the pipeline."""

    def __init__(self) -> None:
        self._answers: list[AppendDone] = []

    def append_soon(
        self,
        event_id: str,
        room_id: str,
        received_at: float,
        payload: bytes,
        replay_until: float,
        envelope: dict[str, Any] | None,
        done: AppendDone,
    ) -> None:
        if not self._answers:
            asyncio.get_running_loop().call_soon(self._answer)
        self._answers.append(done)

    def _answer(self) -> None:
        answers, self._answers = self._answers, []
        for done in answers:
            done(True)

    async def take(self, limit: int, wait_seconds: float) -> list[IntakeRecord]:
        await asyncio.sleep(wait_seconds)
        return []

    async def ack(self, record: IntakeRecord) -> None:
        """Nothing was handed out."""

    def depth(self) -> int:
        return 0

    def oldest_age(self, now: float) -> float:
        return 0.0

    def is_ready(self) -> bool:
        return True


def _nothing_stored(settings: IntakeSettings) -> Intake:
    return NothingStored()


def main() -> int:
    settings = load_settings(sys.argv[1])
    receiver.service.build_intake = _nothing_stored  # type: ignore[attr-defined]
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
