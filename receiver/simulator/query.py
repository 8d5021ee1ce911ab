"""The list query of MetaStudio's job APIs: parsing, filtering, sorting and paging."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from receiver.simulator.jobs import JOB_STATES, parse_rfc3339

MAX_OFFSET = 2_147_483_647
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
SORT_KEYS = ("create_time", "update_time", "asset_order")
SORT_DIRS = ("asc", "desc")


class InvalidParameter(ValueError):
    """A query parameter is out of range or malformed (answered 400 ``MSS.00000003``)."""


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A validated list query, with MetaStudio's defaults filled in."""

    offset: int = 0
    limit: int = DEFAULT_LIMIT
    states: frozenset[str] = frozenset()
    sort_key: str = "create_time"
    sort_dir: str = "asc"
    create_since: datetime | None = None
    create_until: datetime | None = None
    room_name: str | None = None


def _integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise InvalidParameter(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise InvalidParameter(f"{name} must be between {low} and {high}")
    return value


def _choice(params: Mapping[str, str], name: str, default: str, allowed: Iterable[str]) -> str:
    value = params.get(name)
    if value is None:
        return default
    if value not in allowed:
        raise InvalidParameter(f"{name} must be one of {', '.join(allowed)}")
    return value


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    text = params.get(name)
    if text is None:
        return None
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise InvalidParameter(f"{name} must be an RFC 3339 time") from None


def _states(params: Mapping[str, str]) -> frozenset[str]:
    text = params.get("state")
    if not text:
        return frozenset()
    states = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(states.difference(JOB_STATES))
    if unknown:
        raise InvalidParameter(f"state: unknown value(s) {', '.join(unknown)}")
    return states


def parse_list_query(params: Mapping[str, str], *, allow_room_name: bool = True) -> ListQuery:
    """Validate the query of a list call; ``room_name`` is ignored where the API lacks it."""
    since, until = _time(params, "create_since"), _time(params, "create_until")
    room_name = params.get("room_name") if allow_room_name else None
    return ListQuery(
        offset=_integer(params, "offset", 0, 0, MAX_OFFSET),
        limit=_integer(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        states=_states(params),
        sort_key=_choice(params, "sort_key", "create_time", SORT_KEYS),
        sort_dir=_choice(params, "sort_dir", "asc", SORT_DIRS),
        create_since=since,
        create_until=until,
        room_name=room_name or None,
    )


def _matches(job: Mapping[str, Any], query: ListQuery) -> bool:
    if query.states and job["state"] not in query.states:
        return False
    if query.room_name is not None and (
        query.room_name.casefold() not in str(job["room_name"]).casefold()
    ):
        return False
    if query.create_since is None and query.create_until is None:
        return True
    created = parse_rfc3339(str(job["create_time"]))
    if query.create_since is not None and created < query.create_since:
        return False
    return query.create_until is None or created <= query.create_until


def _sort_value(job: Mapping[str, Any], sort_key: str) -> tuple[Any, ...]:
    """The ordering of one job; ties are broken by ``job_id`` so pages never overlap.

    ``asset_order`` has no field in the job object; this simulator orders it by room name.
    """
    if sort_key == "update_time":
        return (parse_rfc3339(str(job["lastupdate_time"])), job["job_id"])
    if sort_key == "asset_order":
        return (str(job["room_name"]), job["job_id"])
    return (parse_rfc3339(str(job["create_time"])), job["job_id"])


def select(
    jobs: Iterable[Mapping[str, Any]], query: ListQuery
) -> tuple[int, list[Mapping[str, Any]]]:
    """``(count of all matching jobs, the requested page)``, as the list APIs answer."""
    matching = [job for job in jobs if _matches(job, query)]
    descending = query.sort_dir == "desc"
    matching.sort(key=lambda job: _sort_value(job, query.sort_key), reverse=descending)
    return len(matching), matching[query.offset : query.offset + query.limit]
