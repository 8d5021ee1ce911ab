"""A local MetaStudio: the smart-live job API (behind a simulated gateway) and a sender of
signed live-event callbacks, for development, tests and benchmarks without the cloud."""

from __future__ import annotations

from receiver.simulator.api import SimState, SimStats, create_api_app
from receiver.simulator.cli import register
from receiver.simulator.gateway import ApiError, Credentials, TokenBucket, authenticate
from receiver.simulator.jobs import (
    JOB_STATES,
    generate_jobs,
    jobs_by_room,
    live_job_per_room,
    parse_rfc3339,
    rfc3339,
)
from receiver.simulator.query import InvalidParameter, ListQuery, parse_list_query, select
from receiver.simulator.scenario import (
    EVENT_TYPES,
    LIVE_SESSION,
    Callback,
    live_session,
    live_sessions,
    plan_size,
    single_event,
    single_events,
)
from receiver.simulator.sender import Pacer, Summary, Target, send_plan

__all__ = [
    "EVENT_TYPES",
    "JOB_STATES",
    "LIVE_SESSION",
    "ApiError",
    "Callback",
    "Credentials",
    "InvalidParameter",
    "ListQuery",
    "Pacer",
    "SimState",
    "SimStats",
    "Summary",
    "Target",
    "TokenBucket",
    "authenticate",
    "create_api_app",
    "generate_jobs",
    "jobs_by_room",
    "live_job_per_room",
    "live_session",
    "live_sessions",
    "parse_list_query",
    "parse_rfc3339",
    "plan_size",
    "register",
    "rfc3339",
    "select",
    "send_plan",
    "single_event",
    "single_events",
]
