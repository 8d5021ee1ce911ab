"""The intake interface: append_soon is the one primitive, append awaits it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from receiver.intake.base import AppendDone, CoroutineIntake, Intake, IntakeRecord


class Answering(Intake):
    """Answers each append_soon when told to."""

    def __init__(self) -> None:
        self.waiting: list[AppendDone] = []

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
        self.waiting.append(done)

    async def take(self, limit: int, wait_seconds: float) -> list[IntakeRecord]:
        return []

    async def ack(self, record: IntakeRecord) -> None:
        """Nothing is stored."""

    def depth(self) -> int:
        return 0

    def oldest_age(self, now: float) -> float:
        return 0.0

    def is_ready(self) -> bool:
        return True


class Storing(CoroutineIntake, Answering):
    async def store(
        self, event_id: str, room_id: str, received_at: float, payload: bytes, replay_until: float
    ) -> bool:
        await asyncio.sleep(0)
        if event_id == "bad":
            raise OSError("disk")
        return event_id != "seen"


async def test_append_awaits_append_soon() -> None:
    intake = Answering()
    pending = asyncio.ensure_future(intake.append("e", "r", 0.0, b"{}", 1.0))
    await asyncio.sleep(0)
    (done,) = intake.waiting
    done(True)
    assert await pending is True


async def test_an_answer_after_the_waiter_left_is_harmless() -> None:
    intake = Answering()
    pending = asyncio.ensure_future(intake.append("e", "r", 0.0, b"{}", 1.0))
    await asyncio.sleep(0)
    pending.cancel()
    await asyncio.sleep(0)
    intake.waiting[0](OSError("late"))  # must not raise InvalidStateError


async def test_a_coroutine_store_serves_both_ways() -> None:
    intake = Storing()
    assert await intake.append("new", "r", 0.0, b"{}", 1.0) is True
    assert await intake.append("seen", "r", 0.0, b"{}", 1.0) is False
    with pytest.raises(OSError, match="disk"):
        await intake.append("bad", "r", 0.0, b"{}", 1.0)
    outcomes: list[bool | BaseException] = []
    intake.append_soon("bad", "r", 0.0, b"{}", 1.0, None, outcomes.append)
    await asyncio.sleep(0.01)
    assert len(outcomes) == 1 and isinstance(outcomes[0], OSError)
