"""``simulate api`` and ``simulate send`` from the command line, end to end."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.config import SigningRule
from receiver.metastudio.signing import sign_request
from receiver.signatures import SECRET_PARAM, TIME_PARAM, Verifier
from receiver.simulator import register

from .conftest import AK, PROJECT_ID, SK, serve

KEY = "cli-test-key"
LAUNCH = (
    "import argparse, sys\n"
    "from receiver.simulator import register\n"
    "parser = argparse.ArgumentParser(prog='receiver')\n"
    "register(parser.add_subparsers(dest='command', required=True))\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.func(args))\n"
)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="receiver")
    register(root.add_subparsers(dest="command", required=True))
    return root


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable,
        "-c",
        LAUNCH,
        "simulate",
        "api",
        "--port",
        str(port),
        "--project-id",
        PROJECT_ID,
        "--ak",
        AK,
        "--sk",
        SK,
        "--token",
        "tok",
        "--jobs",
        "30",
        "--seed",
        "42",
        "--latency-ms",
        "1",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_sim/stats", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("simulate api did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture
def recorder() -> Iterator[tuple[list[dict[str, Any]], str]]:
    received: list[dict[str, Any]] = []
    state = {"url": ""}

    async def endpoint(request: Request) -> Response:
        verifier = Verifier(state["url"], [KEY], [SigningRule.HOST_PATH_QUERY])
        secret = request.query_params.get(SECRET_PARAM, "")
        if verifier.verify(secret, request.query_params.get(TIME_PARAM, "")) is None:
            return Response(status_code=401)
        received.append(orjson.loads(orjson.loads(await request.body())["message"]))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/cb", endpoint, methods=["POST"])])
    with serve(app) as base_url:
        state["url"] = f"{base_url}/cb"
        yield received, state["url"]


def test_parser_shape() -> None:
    args = parser().parse_args(
        [
            "simulate",
            "send",
            "--url",
            "https://x/cb",
            "--key",
            "k",
            "--auth",
            "MSS_A",
            "--event",
            "SHOOT_SCRIPT_SWITCH",
            "--event",
            "REPLY_COMMAND_FINISH",
            "--rooms",
            "2",
        ]
    )
    assert args.event == ["SHOOT_SCRIPT_SWITCH", "REPLY_COMMAND_FINISH"]
    assert args.rooms == 2
    with pytest.raises(SystemExit):
        parser().parse_args(["simulate", "send", "--url", "u", "--auth", "BASIC"])
    with pytest.raises(SystemExit):
        parser().parse_args(["simulate", "api", "--port", "1", "--ak", "a"])


def test_send_scenario_matches_the_api_jobs(
    api_url: str,
    recorder: tuple[list[dict[str, Any]], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    received, callback_url = recorder
    code = run(
        [
            "simulate",
            "send",
            "--url",
            callback_url,
            "--key",
            KEY,
            "--auth",
            "MSS_A",
            "--scenario",
            "live-session",
            "--rooms",
            "3",
            "--jobs",
            "30",
            "--seed",
            "42",
            "--project-id",
            PROJECT_ID,
            "--rate",
            "500",
            "--count",
            "40",
        ]
    )
    assert code == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["sent"] == 40
    assert report["statuses"] == {"204": 40}
    assert report["rooms"] == 3
    assert len(received) == 40
    pairs = {(message["room_id"], message["job_id"]) for message in received}
    assert len({room for room, _ in pairs}) == 3
    with httpx.Client(base_url=api_url, headers={"X-Project-Id": PROJECT_ID}) as http:
        for room_id, job_id in pairs:
            request = http.build_request(
                "GET", f"/v1/{PROJECT_ID}/smart-live-rooms/{room_id}/smart-live-jobs/{job_id}"
            )
            sign_request(request, AK, SK)
            assert http.send(request).status_code == 200


def test_send_single_events_with_token_api(
    api_url: str,
    recorder: tuple[list[dict[str, Any]], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    received, callback_url = recorder
    code = run(
        [
            "simulate",
            "send",
            "--url",
            callback_url,
            "--key",
            KEY,
            "--auth",
            "MSS_A",
            "--event",
            "RTMP_STREAM_STATE_CHANGE",
            "--rooms",
            "2",
            "--jobs",
            "30",
            "--seed",
            "42",
            "--count",
            "4",
        ]
    )
    assert code == 0
    assert orjson.loads(capsys.readouterr().out)["sent"] == 4
    assert {message["state"] for message in received} <= {"CONNECTING", "CONNECTED"}
    listed = httpx.get(
        f"{api_url}/v1/{PROJECT_ID}/smart-live-jobs", headers={"X-Auth-Token": "tok"}
    ).json()
    assert listed["count"] == 30
    assert all(_room_exists(api_url, message["room_id"]) for message in received)


def _room_exists(api_url: str, room_id: str) -> bool:
    url = f"{api_url}/v1/{PROJECT_ID}/smart-live-rooms/{room_id}/smart-live-jobs"
    return httpx.get(url, headers={"X-Auth-Token": "tok"}).status_code == 200


def test_send_signed_auth_needs_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["simulate", "send", "--url", "http://127.0.0.1:9/cb", "--auth", "MSS_A"]) == 2
    assert "--key" in capsys.readouterr().err
