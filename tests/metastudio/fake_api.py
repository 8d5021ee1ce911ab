"""A small stand-in for MetaStudio and IAM, verifying AK/SK with ``receiver.metastudio.signing``.

Tests script it through :class:`ApiState`: the jobs it holds, faults to answer with
(status and body, or a delay), which tokens are valid, and what every request carried.
"""

from __future__ import annotations

import asyncio
import hmac
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.metastudio.signing import canonical_request, parse_authorization, signature

PROJECT_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
AK = "AKTESTACCESSKEY0001"
SK = "sk-very-secret-value-0001"
IAM_USER = "ops-user"
IAM_PASSWORD = "iam-password-secret-0001"
IAM_DOMAIN = "tenant-domain"


@dataclass
class Fault:
    """One scripted answer: an error status and body, and/or a delay before answering."""

    status: int = 0
    body: dict[str, Any] | None = None
    delay: float = 0.0
    raw: bytes | None = None


@dataclass
class Seen:
    """What one API request carried."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]


@dataclass
class ApiState:
    """Everything a test can script or inspect."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    token_fetches: int = 0
    token_expires_at: str | None = None
    iam_delay: float = 0.0
    iam_bodies: list[dict[str, Any]] = field(default_factory=list)
    unknown_paths: list[str] = field(default_factory=list)

    def reset(self) -> None:
        fresh = ApiState()
        for item in fields(self):
            setattr(self, item.name, getattr(fresh, item.name))

    def query_of(self, index: int = -1) -> dict[str, str]:
        return dict(self.seen[index].query)


def make_job(index: int, room_id: str = "room-1", **extra: Any) -> dict[str, Any]:
    """A job as MetaStudio returns it, secrets included."""
    job: dict[str, Any] = {
        "job_id": f"job-{index:04d}",
        "room_id": room_id,
        "room_name": f"直播间 {room_id}",
        "state": "PROCESSING" if index % 2 else "WAITING",
        "duration": 60.0 + index,
        "create_time": f"2024-05-01T08:{index // 60 % 60:02d}:{index % 60:02d}Z",
        "lastupdate_time": "2024-05-01T09:00:00Z",
        "rtc_room_info": {
            "app_id": "rtc-app",
            "room_id": "rtc-room",
            "users": [{"user_type": "PLAYER", "user_id": "u1", "signature": "rtc-sig-secret"}],
        },
        "live_event_callback_config": {
            "live_event_type_callback_url": "https://receiver.example.com/cb?token=url-secret",
            "auth_type": "MSS_A_HEAD",
            "key": "callback-key-secret",
            "callback_event_type": ["SHOOT_SCRIPT_SWITCH"],
        },
        "future_field": {"nested": True},
    }
    job.update(extra)
    return job


def _json(status: int, body: Any, request_id: str = "req-fake-0001") -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"X-Request-Id": request_id},
    )


def _unauthorized(detail: str) -> Response:
    return _json(401, {"error_code": "APIGW.0301", "error_msg": detail})


async def _authenticate(request: Request, state: ApiState) -> Response | None:
    token = request.headers.get("x-auth-token")
    if token is not None:
        return None if token in state.tokens else _unauthorized("token invalid or expired")
    parsed = parse_authorization(request.headers.get("authorization", ""))
    if parsed is None:
        return _unauthorized("authorization header malformed")
    access, signed, given = parsed
    if access != AK or "host" not in signed or "x-sdk-date" not in signed:
        return _unauthorized("access key or signed headers refused")
    headers = {name.lower(): value for name, value in request.headers.items()}
    canonical = canonical_request(
        request.method,
        request.scope["raw_path"].decode("latin-1"),
        request.scope["query_string"].decode("latin-1"),
        headers,
        signed,
        await request.body(),
    )
    expected = signature(SK, headers.get("x-sdk-date", ""), canonical)
    if not hmac.compare_digest(expected, given):
        return _unauthorized("verify aksk signature fail")
    if headers.get("x-project-id") != PROJECT_ID:
        return _unauthorized("x-project-id mismatch")
    return None


async def _gate(request: Request) -> Response | None:
    """Record the request, play the next fault, check credentials and project."""
    state: ApiState = request.app.state.api
    state.seen.append(
        Seen(
            request.method,
            request.url.path,
            parse_qsl(request.scope["query_string"].decode(), keep_blank_values=True),
            {name.lower(): value for name, value in request.headers.items()},
        )
    )
    if state.faults:
        fault = state.faults.popleft()
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.raw is not None:
            return Response(fault.raw, status_code=fault.status or 200)
        if fault.status:
            return _json(fault.status, fault.body or {})
    denied = await _authenticate(request, state)
    if denied is not None:
        return denied
    if request.path_params["project_id"] != PROJECT_ID:
        return _json(404, {"error_code": "MSS.00000005", "error_msg": "project not found"})
    return None


def _page(request: Request, jobs: list[dict[str, Any]]) -> Response:
    query = dict(parse_qsl(request.scope["query_string"].decode(), keep_blank_values=True))
    offset = int(query.get("offset", "0"))
    limit = int(query.get("limit", "10"))
    if not 1 <= limit <= 100 or offset < 0:
        return _json(400, {"error_code": "MSS.00000003", "error_msg": "Invalid parameter"})
    if "state" in query:
        jobs = [job for job in jobs if job["state"] in query["state"].split(",")]
    if "room_name" in query:
        jobs = [job for job in jobs if query["room_name"] in job["room_name"]]
    if query.get("sort_dir") == "desc":
        jobs = list(reversed(jobs))
    return _json(200, {"count": len(jobs), "smart_live_jobs": jobs[offset : offset + limit]})


async def list_jobs(request: Request) -> Response:
    return await _gate(request) or _page(request, request.app.state.api.jobs)


async def list_room_jobs(request: Request) -> Response:
    room = request.path_params["room_id"]
    jobs = [job for job in request.app.state.api.jobs if job["room_id"] == room]
    return await _gate(request) or _page(request, jobs)


async def get_job(request: Request) -> Response:
    denied = await _gate(request)
    if denied is not None:
        return denied
    for job in request.app.state.api.jobs:
        if (job["room_id"], job["job_id"]) == (
            request.path_params["room_id"],
            request.path_params["job_id"],
        ):
            return _json(200, job)
    return _json(404, {"error_code": "MSS.00000005", "error_msg": "job not found"})


async def iam_tokens(request: Request) -> Response:
    state: ApiState = request.app.state.api
    body = orjson.loads(await request.body())
    state.iam_bodies.append(body)
    if state.iam_delay:
        await asyncio.sleep(state.iam_delay)
    user = body["auth"]["identity"]["password"]["user"]
    project = body["auth"]["scope"]["project"]["id"]
    if (user["name"], user["password"], user["domain"]["name"], project) != (
        IAM_USER,
        IAM_PASSWORD,
        IAM_DOMAIN,
        PROJECT_ID,
    ):
        return _json(401, {"error": {"code": 401, "message": "The username or password is wrong."}})
    state.token_fetches += 1
    token = f"token-secret-{state.token_fetches:03d}"
    state.tokens.add(token)
    document: dict[str, Any] = {"token": {"methods": ["password"]}}
    if state.token_expires_at is not None:
        document["token"]["expires_at"] = state.token_expires_at
    response = _json(201, document)
    response.headers["X-Subject-Token"] = token
    return response


async def unknown(request: Request) -> Response:
    request.app.state.api.unknown_paths.append(request.scope["raw_path"].decode("latin-1"))
    return _json(404, {"error_code": "APIGW.0101", "error_msg": "The API does not exist"})


def build_app(state: ApiState) -> Starlette:
    """The fake MetaStudio + IAM application."""
    app = Starlette(
        routes=[
            Route("/v3/auth/tokens", iam_tokens, methods=["POST"]),
            Route("/v1/{project_id}/smart-live-jobs", list_jobs),
            Route("/v1/{project_id}/smart-live-rooms/{room_id}/smart-live-jobs", list_room_jobs),
            Route("/v1/{project_id}/smart-live-rooms/{room_id}/smart-live-jobs/{job_id}", get_job),
            Route("/{rest:path}", unknown),
        ]
    )
    app.state.api = state
    return app


@dataclass
class RunningApi:
    """The fake API served on loopback."""

    state: ApiState
    url: str


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(state: ApiState) -> Iterator[RunningApi]:
    """Run the app under uvicorn in a background thread for as long as the generator lives."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        build_app(state), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake API did not start")
        time.sleep(0.01)
    try:
        yield RunningApi(state, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
