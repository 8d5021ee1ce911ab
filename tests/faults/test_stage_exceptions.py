"""An exception raised by any stage for one event, in a whole receiver: that event is set
aside (dead-lettered or forwarded ``unavailable``), every other room is delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

import receiver.service
from receiver.app import ReceiverApp
from receiver.config import load_settings
from receiver.routing import Router
from receiver.sinks.base import Delivery
from receiver.sinks.jsonl import JsonlSink
from tests.helpers import callback_body, read_jsonl, signed_headers, write_config

PATH = "/callbacks/metastudio"
POISON = "room-poison"
ROOMS = ["room-a", POISON, "room-b", "room-c"]


class PoisonError(RuntimeError):
    """What a stage raises for the poisoned room only."""


def poisoned(envelope: dict[str, Any]) -> bool:
    return envelope.get("roomid") == POISON


class RaisingEnricher:
    """Stands in for the enricher: raises for the poisoned room, marks the rest ok."""

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to close."""

    async def enrich(self, envelope: dict[str, Any]) -> None:
        if poisoned(envelope):
            raise PoisonError("enrichment blew up")
        envelope["data"]["enrichment"] = {"status": "ok", "source": "cache"}


def inject(stage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if stage == "route":
        route = Router.sinks_for

        def sinks_for(self: Router, envelope: dict[str, Any]) -> list[str]:
            if poisoned(envelope):
                raise PoisonError("routing blew up")
            return route(self, envelope)

        monkeypatch.setattr(Router, "sinks_for", sinks_for)
    elif stage == "enrichment":
        monkeypatch.setattr(receiver.service, "build_enricher", lambda *_, **__: RaisingEnricher())
    else:
        publish = JsonlSink.publish_batch

        async def publish_batch(
            self: JsonlSink, batch: Sequence[Delivery]
        ) -> list[BaseException | None]:
            outcomes: list[BaseException | None] = []
            for delivery in batch:
                if poisoned(delivery[0]):
                    outcomes.append(PoisonError("the client library refused it"))
                    return outcomes  # the rest of the batch is tried again
                outcomes.extend(await publish(self, [delivery]))
            return outcomes

        monkeypatch.setattr(JsonlSink, "publish_batch", publish_batch)


@pytest.mark.parametrize("stage", ["route", "enrichment", "sink"])
async def test_one_events_exception_sets_only_that_event_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    inject(stage, monkeypatch)
    port = 8999
    url = f"http://127.0.0.1:{port}{PATH}"
    app = ReceiverApp(load_settings(write_config(tmp_path, port)))
    await app.service.start()
    sent: list[str] = []
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"http://127.0.0.1:{port}"
        ) as http:
            for n in range(12):
                room = ROOMS[n % len(ROOMS)]
                body = callback_body(room=room, reply_id=str(n))
                answer = await http.post(PATH, content=body, headers=signed_headers(url))
                assert answer.status_code == 200, answer.text
                sent.append(room)
        async with asyncio.timeout(15):
            while app.service.intake.depth():
                await asyncio.sleep(0.02)
        letters = await app.service.dead_letters.list(limit=100)
    finally:
        await app.service.stop()
    delivered = read_jsonl(tmp_path / "out.jsonl")
    healthy = [room for room in sent if room != POISON]
    if stage == "enrichment":
        rooms = [str(event["roomid"]) for event in delivered]
        assert sorted(rooms) == sorted(sent) and letters == []
        statuses = {
            str(event["roomid"]): event["data"]["enrichment"]["status"]  # type: ignore[index]
            for event in delivered
        }
        assert statuses[POISON] == "unavailable" and statuses["room-a"] == "ok"
        return
    assert sorted(str(event["roomid"]) for event in delivered) == sorted(healthy)
    assert len(letters) == sent.count(POISON)
    assert {letter.sink for letter in letters} == {"(unrouted)" if stage == "route" else "out"}
    assert all("PoisonError" in letter.last_error for letter in letters)
