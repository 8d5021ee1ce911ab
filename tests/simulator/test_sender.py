"""The sender against a small verifying receiver: signatures, order per room, bounds."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.config import AuthType, SigningRule
from receiver.signatures import (
    SECRET_HEADER,
    SECRET_PARAM,
    TIME_HEADER,
    TIME_PARAM,
    Verifier,
    parse_hex_time,
)
from receiver.simulator import Target, live_sessions, plan_size, send_plan, single_events

from .conftest import serve

KEY = "GCTbw44s6MPLh4GqgDpnfuFHgy25Enly"


class Recorder:
    """A receiver that verifies MSS_A / MSS_A_HEAD like MetaStudio's peer and records."""

    def __init__(self) -> None:
        self.callback_url = ""
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight_per_room = 0

    def proof(self, request: Request) -> tuple[str, str] | None:
        if SECRET_HEADER in request.headers:
            return request.headers[SECRET_HEADER], request.headers[TIME_HEADER]
        if SECRET_PARAM in request.query_params:
            return request.query_params[SECRET_PARAM], request.query_params[TIME_PARAM]
        return None

    async def endpoint(self, request: Request) -> Response:
        verifier = Verifier(self.callback_url, [KEY], [SigningRule.HOST_PATH_QUERY])
        proof = self.proof(request)
        if proof is not None:
            signed_at = parse_hex_time(proof[1])
            if (
                verifier.verify(*proof) is None
                or signed_at is None
                or abs(time.time() - signed_at) > 60
            ):
                self.refused += 1
                return Response(status_code=401)
        body = orjson.loads(await request.body())
        message = orjson.loads(body["message"])
        room = message["room_id"]
        self.in_flight[room] += 1
        self.max_in_flight_per_room = max(self.max_in_flight_per_room, self.in_flight[room])
        await asyncio.sleep(0.002)
        self.in_flight[room] -= 1
        self.received.append(
            {
                "body": body,
                "room": room,
                "proof": proof is not None,
                "content_type": request.headers["content-type"],
                "token": request.query_params.get("token"),
            }
        )
        return Response(status_code=200)


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, str]]:
    recorder = Recorder()
    app = Starlette(routes=[Route("/callbacks/metastudio", recorder.endpoint, methods=["POST"])])
    with serve(app) as base_url:
        recorder.callback_url = f"{base_url}/callbacks/metastudio?token=abc&env=dev"
        yield recorder, recorder.callback_url


@pytest.mark.parametrize("auth_type", [AuthType.MSS_A, AuthType.MSS_A_HEAD])
async def test_signed_callbacks_verify(
    recorder: tuple[Recorder, str], jobs: list[dict[str, Any]], auth_type: AuthType
) -> None:
    receiver, url = recorder
    plan = live_sessions(jobs, seed=1, rooms=3)
    summary = await send_plan(plan, Target(url, KEY, auth_type), concurrency=4)
    assert summary.sent == plan_size(plan)
    assert summary.statuses == Counter({"200": plan_size(plan)})
    assert receiver.refused == 0
    assert all(item["proof"] and item["token"] == "abc" for item in receiver.received)
    assert {item["content_type"] for item in receiver.received} == {"application/json"}
    report = summary.as_dict()
    assert report["sent"] == plan_size(plan)
    assert report["latency_ms"]["max"] > 0


async def test_wrong_key_is_refused(recorder: tuple[Recorder, str], jobs: list[Any]) -> None:
    receiver, url = recorder
    plan = single_events(jobs, ["REPLY_COMMAND_FINISH"], count=3, seed=1)
    summary = await send_plan(plan, Target(url, "another-key", AuthType.MSS_A_HEAD))
    assert summary.statuses == Counter({"401": 3})
    assert receiver.refused == 3


async def test_none_sends_no_proof(recorder: tuple[Recorder, str], jobs: list[Any]) -> None:
    receiver, url = recorder
    plan = single_events(jobs, ["SHOOT_SCRIPT_SWITCH"], count=4, seed=1, rooms=2)
    summary = await send_plan(plan, Target(url, auth_type=AuthType.NONE))
    assert summary.statuses == Counter({"200": 4})
    assert not any(item["proof"] for item in receiver.received)


async def test_each_room_keeps_its_order(recorder: tuple[Recorder, str], jobs: list[Any]) -> None:
    receiver, url = recorder
    plan = live_sessions(jobs, seed=2, rooms=5)
    await send_plan(plan, Target(url, KEY), concurrency=8, rate=2000)
    per_room: dict[str, list[Any]] = defaultdict(list)
    for item in receiver.received:
        per_room[item["room"]].append(item["body"])
    assert per_room == {room: [e.document() for e in events] for room, events in plan.items()}
    assert receiver.max_in_flight_per_room == 1


async def test_round_robin_over_rooms(recorder: tuple[Recorder, str], jobs: list[Any]) -> None:
    receiver, url = recorder
    plan = live_sessions(jobs, seed=2, rooms=3)
    await send_plan(plan, Target(url, KEY), concurrency=1, count=9)
    rooms = list(plan)
    assert [item["room"] for item in receiver.received] == rooms * 3


async def test_count_bounds_the_run(recorder: tuple[Recorder, str], jobs: list[Any]) -> None:
    receiver, url = recorder
    plan = live_sessions(jobs, seed=2, rooms=4)
    summary = await send_plan(plan, Target(url, KEY), count=5, concurrency=3)
    assert summary.sent == 5
    assert len(receiver.received) == 5
    empty = await send_plan({}, Target(url, KEY))
    assert empty.sent == 0


async def test_unreachable_target_is_counted(jobs: list[Any]) -> None:
    with serve(Starlette()) as base_url:
        pass
    plan = single_events(jobs, ["REPLY_COMMAND_FINISH"], count=2, seed=1)
    summary = await send_plan(plan, Target(f"{base_url}/cb", KEY), http_timeout=2)
    assert summary.sent == 2
    assert summary.statuses == Counter({"error:ConnectError": 2})
