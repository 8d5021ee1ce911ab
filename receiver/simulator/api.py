"""A local MetaStudio job API: the three smart-live job calls, a fake IAM, fault injection.

``create_api_app`` serves, behind a simulated API gateway (AK/SK or token, throttling):

- ``GET /v1/{project_id}/smart-live-jobs`` (the tenant's jobs),
- ``GET /v1/{project_id}/smart-live-rooms/{room_id}/smart-live-jobs`` (one room's jobs),
- ``GET /v1/{project_id}/smart-live-rooms/{room_id}/smart-live-jobs/{job_id}`` (one job),
- ``POST /v3/auth/tokens`` (IAM: a password identity gets the configured token),
- ``GET /_sim/stats`` and ``POST /_sim/jobs/{job_id}/state`` (administration, no auth).
"""

from __future__ import annotations

import asyncio
import copy
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.simulator.gateway import (
    JSON_TYPE,
    ApiError,
    Credentials,
    TokenBucket,
    authenticate,
    internal_error,
    invalid_parameter,
    not_found,
    throttled,
)
from receiver.simulator.iam import issue_token
from receiver.simulator.jobs import FINISHED_STATES, JOB_STATES, parse_rfc3339, rfc3339
from receiver.simulator.lifecycle import Lifecycle
from receiver.simulator.query import InvalidParameter, parse_list_query, select

Job = dict[str, Any]
Handler = Callable[[Request, "SimState"], Any]

LIST_JOBS = "list_jobs"
LIST_ROOM_JOBS = "list_room_jobs"
SHOW_JOB = "show_job"


@dataclass
class SimStats:
    """Calls served per path kind, and responses per HTTP status."""

    calls: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        """A JSON-ready copy."""
        return {"calls": dict(self.calls), "statuses": dict(self.statuses)}


@dataclass
class SimState:
    """Everything the app keeps: jobs by id (insertion order), settings, counters."""

    jobs: dict[str, Job]
    creds: Credentials
    fail_rate: float
    latency_ms: int
    bucket: TokenBucket | None
    rng: random.Random
    stats: SimStats = field(default_factory=SimStats)
    lifecycle: Lifecycle | None = None


def _json(body: Any, request_id: str, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=JSON_TYPE,
        headers={"X-Request-Id": request_id},
    )


def _room_jobs(state: SimState, room_id: str) -> list[Job]:
    jobs = [job for job in state.jobs.values() if job["room_id"] == room_id]
    if not jobs:
        raise not_found(f"room {room_id} not found")
    return jobs


def _list(request: Request, jobs: Sequence[Job], room_name: bool) -> Any:
    params = dict(request.query_params)
    if len(states := request.query_params.getlist("state")) > 1:
        params["state"] = ",".join(states)  # a repeated parameter counts as a comma list
    try:
        query = parse_list_query(params, allow_room_name=room_name)
    except InvalidParameter as error:
        raise invalid_parameter(str(error)) from None
    count, page = select(jobs, query)
    return {"count": count, "smart_live_jobs": page}


def _list_jobs(request: Request, state: SimState) -> Any:
    return _list(request, list(state.jobs.values()), room_name=True)


def _list_room_jobs(request: Request, state: SimState) -> Any:
    jobs = _room_jobs(state, request.path_params["room_id"])
    return _list(request, jobs, room_name=False)


def _show_job(request: Request, state: SimState) -> Any:
    room_id, job_id = request.path_params["room_id"], request.path_params["job_id"]
    _room_jobs(state, room_id)
    job = state.jobs.get(job_id)
    if job is None or job["room_id"] != room_id:
        raise not_found(f"job {job_id} not found in room {room_id}")
    return job


def _job_api(kind: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a job API handler in the gateway: delay, auth, throttle, injected failures."""

    async def endpoint(request: Request) -> Response:
        state: SimState = request.app.state.sim
        request_id = uuid.uuid4().hex
        state.stats.calls[kind] += 1
        if state.lifecycle is not None:
            state.lifecycle.advance(state.jobs, _apply_state)
        try:
            if state.latency_ms > 0:
                await asyncio.sleep(state.latency_ms / 1000)
            await authenticate(request, state.creds)
            if request.path_params["project_id"] != state.creds.project_id:
                raise ApiError(403, "APIGW.0302", "The IAM user is not authorized for this project")
            if state.bucket is not None and not state.bucket.take():
                raise throttled()
            if state.fail_rate > 0 and state.rng.random() < state.fail_rate:
                raise internal_error()
            if not request.headers.get("x-app-userid", "").isascii():
                raise invalid_parameter("X-App-UserId must not contain Chinese characters")
            response = _json(handler(request, state), request_id)
        except ApiError as error:
            response = error.response(request_id)
        state.stats.statuses[str(response.status_code)] += 1
        return response

    return endpoint


async def _iam_tokens(request: Request) -> Response:
    state: SimState = request.app.state.sim
    state.stats.calls["iam_tokens"] += 1
    status, headers, body = issue_token(await request.body(), state.creds)
    state.stats.statuses[str(status)] += 1
    return Response(orjson.dumps(body), status_code=status, media_type=JSON_TYPE, headers=headers)


async def _stats(request: Request) -> Response:
    state: SimState = request.app.state.sim
    return _json(state.stats.as_dict(), uuid.uuid4().hex)


def _admin_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or body.get("state") not in JOB_STATES:
        raise invalid_parameter(f'body must be {{"state": one of {", ".join(JOB_STATES)}}}')
    for name in ("error_info", "live_event_callback_config"):
        if name in body and not isinstance(body[name], dict):
            raise invalid_parameter(f"{name} must be an object")
    if "block_reason" in body and not isinstance(body["block_reason"], str):
        raise invalid_parameter("block_reason must be a string")
    return body


async def _set_state(request: Request) -> Response:
    """Change a job's state, as when a live starts or ends; finishing sets ``end_time``.

    The body may also set ``error_info``, ``block_reason`` and ``live_event_callback_config``
    (where MetaStudio sends the job's callbacks).
    """
    state: SimState = request.app.state.sim
    request_id = uuid.uuid4().hex
    job = state.jobs.get(request.path_params["job_id"])
    try:
        if job is None:
            raise not_found(f"job {request.path_params['job_id']} not found")
        body = _admin_body(await request.body())
    except ApiError as error:
        return error.response(request_id)
    for name in ("error_info", "block_reason", "live_event_callback_config"):
        if name in body:
            job[name] = body[name]
    if state.lifecycle is not None:
        state.lifecycle.pinned.add(str(job["job_id"]))
    _apply_state(job, body["state"], datetime.now(UTC))
    return _json(job, request_id)


def _apply_state(job: Job, new_state: str, now: datetime) -> None:
    job["state"] = new_state
    job["lastupdate_time"] = rfc3339(now)
    if new_state == "PROCESSING" and not job.get("start_time"):
        job["start_time"] = rfc3339(now)
    if new_state in FINISHED_STATES:
        job["end_time"] = rfc3339(now)
        if job.get("start_time"):
            started = parse_rfc3339(str(job["start_time"]))
            job["duration"] = max(0.0, (now - started) / timedelta(seconds=1))


async def _unknown_api(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    code, message = ("APIGW.0101", "The API does not exist or has not been published")
    return ApiError(status, code, message).response(uuid.uuid4().hex)


def create_api_app(
    jobs: Sequence[Mapping[str, Any]],
    project_id: str,
    ak: str,
    sk: str,
    token: str | None = None,
    fail_rate: float = 0.0,
    latency_ms: int = 0,
    rate_limit: float | None = None,
    seed: int | str = 0,
    lifecycle: Lifecycle | None = None,
) -> Starlette:
    """A Starlette app serving ``jobs`` as MetaStudio would, for tenant ``project_id``.

    ``fail_rate`` is the fraction of authenticated job calls answered 500 (drawn from a
    ``seed``-ed generator), ``latency_ms`` a delay added to each job call, ``rate_limit``
    the requests per second over which the gateway answers 429 ``APIGW.0308`` (None: no limit).
    With ``lifecycle`` the jobs start WAITING and change state over time
    (:mod:`receiver.simulator.lifecycle`).
    Counters are at ``app.state.sim.stats`` and ``GET /_sim/stats``.
    """
    if not 0.0 <= fail_rate <= 1.0:
        raise ValueError("fail_rate must be between 0 and 1")
    state = SimState(
        jobs={str(job["job_id"]): copy.deepcopy(dict(job)) for job in jobs},
        creds=Credentials(project_id, ak, sk, token),
        fail_rate=fail_rate,
        latency_ms=max(0, latency_ms),
        bucket=TokenBucket(rate_limit) if rate_limit else None,
        rng=random.Random(f"metastudio-sim-faults:{seed}"),
        lifecycle=lifecycle,
    )
    if lifecycle is not None:
        lifecycle.reset(state.jobs, _apply_state)
    rooms = "/v1/{project_id}/smart-live-rooms/{room_id}/smart-live-jobs"
    routes = [
        Route("/v1/{project_id}/smart-live-jobs", _job_api(LIST_JOBS, _list_jobs)),
        Route(rooms, _job_api(LIST_ROOM_JOBS, _list_room_jobs)),
        Route(rooms + "/{job_id}", _job_api(SHOW_JOB, _show_job)),
        Route("/v3/auth/tokens", _iam_tokens, methods=["POST"]),
        Route("/_sim/stats", _stats),
        Route("/_sim/jobs/{job_id}/state", _set_state, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _unknown_api, 405: _unknown_api})
    app.state.sim = state
    app.state.stats = state.stats
    return app
