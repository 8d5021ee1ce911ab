"""Every replica's console answers for every room and event, whichever replica took the
callback and whichever delivered it: the journal in Redis or JetStream carries them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ReceiverProcess, callback_body, free_port, signed_headers
from tests.replicas.common import broker_stream, file_sink_config, replica_head

ROOMS = 6


def config(directory: Path, index: int, port: int, admin: int, kind: str, stream: str) -> Path:
    head = replica_head(index, port, kind, stream, "partitions = 4")
    return file_sink_config(directory, index, head, f"\n[admin]\nenabled = true\nport = {admin}\n")


@pytest.fixture(params=["redis", "nats"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    yield from broker_stream(request.param, "test-journal-r-")


def wait_for(check: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_each_replica_shows_every_room_and_event(tmp_path: Path, backend: tuple[str, str]) -> None:
    kind, stream = backend
    ports = [(free_port(), free_port()) for _ in range(2)]
    processes = [
        ReceiverProcess(config(tmp_path, i, port, admin, kind, stream), port)
        for i, (port, admin) in enumerate(ports)
    ]
    try:
        for process in processes:
            process.start()
        first = processes[0]
        url = f"{first.base}/callbacks/metastudio"
        accepted: set[str] = set()
        for index in range(ROOMS * 2):
            room = f"room-{index % ROOMS}"
            response = httpx.post(
                url,
                content=callback_body(
                    "RTMP_STREAM_STATE_CHANGE", room, state="CONNECTED", note=str(index)
                ),
                headers=signed_headers(f"http://127.0.0.1:{ports[0][0]}/callbacks/metastudio"),
            )
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "accepted"
            accepted.add(response.json()["id"])
        for _port, admin in ports:  # the replica that took them, and the other one
            console = f"http://127.0.0.1:{admin}"

            def complete(console: str = console) -> bool:
                events = httpx.get(f"{console}/api/events?limit=200").json()["events"]
                delivered = {e["id"] for e in events if e["outcome"] == "delivered"}
                return delivered == accepted

            wait_for(complete)
            rooms = httpx.get(f"{console}/api/rooms").json()["rooms"]
            assert sorted(room["room_id"] for room in rooms) == [
                f"room-{index}" for index in range(ROOMS)
            ]
            assert {room["stream_state"] for room in rooms} == {"CONNECTED"}
            assert all(room["counts"] == {"RTMP_STREAM_STATE_CHANGE": 2} for room in rooms)
    finally:
        for process in processes:
            if process.process is not None and process.process.poll() is None:
                process.terminate()
