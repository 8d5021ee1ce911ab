"""Query parameters of the job list APIs, validated before any request is made."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from receiver.metastudio.errors import InvalidQueryError

MAX_OFFSET = 2_147_483_647
MAX_LIMIT = 100
JOB_STATES = ("WAITING", "PROCESSING", "SUCCEED", "FAILED", "BLOCKED")
SORT_KEYS = ("create_time", "update_time", "asset_order")

JobState = Literal["WAITING", "PROCESSING", "SUCCEED", "FAILED", "BLOCKED"]
SortKey = Literal["create_time", "update_time", "asset_order"]
SortDir = Literal["asc", "desc"]

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _rfc3339(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a datetime needs a time zone")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str):
        text = value.strip()
        if not _RFC3339.match(text):
            raise ValueError("must be an RFC 3339 time such as 2024-01-10T08:43:17Z")
        try:
            _instant(text)
        except ValueError:
            raise ValueError("not a valid date or time of day") from None
        return text
    return value


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("z", "Z"))


class JobsQuery(BaseModel):
    """Query of ``GET .../smart-live-rooms/{room_id}/smart-live-jobs`` (no ``room_name``).

    Unset parameters are not sent, so the provider's defaults apply (offset 0, limit 10,
    every state, ascending).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    offset: int | None = Field(None, ge=0, le=MAX_OFFSET)
    limit: int | None = Field(None, ge=1, le=MAX_LIMIT)
    state: tuple[JobState, ...] | None = None
    sort_key: SortKey | None = None
    sort_dir: SortDir | None = None
    create_since: str | None = None
    create_until: str | None = None

    @field_validator("state", mode="before")
    @classmethod
    def _split_states(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple | set | frozenset):
            states = [str(item).strip().upper() for item in value]
            if not all(states):
                raise ValueError("empty state in the list")
            return tuple(dict.fromkeys(states)) or None
        return value

    @field_validator("create_since", "create_until", mode="before")
    @classmethod
    def _check_time(cls, value: object) -> object:
        return _rfc3339(value)

    @model_validator(mode="after")
    def _window_in_order(self) -> Self:
        since, until = self.create_since, self.create_until
        if since and until and _instant(since) > _instant(until):
            raise ValueError("create_since is later than create_until")
        return self

    @classmethod
    def parse(cls, **params: Any) -> Self:
        """Build from keyword parameters; :class:`InvalidQueryError` names each bad one."""
        try:
            return cls(**params)
        except ValidationError as error:
            raise InvalidQueryError(_problems(error)) from None

    def to_params(self) -> dict[str, str]:
        """The query parameters to send, as strings (``state`` comma-joined)."""
        params: dict[str, str] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            params[name] = ",".join(value) if isinstance(value, tuple) else str(value)
        return params

    def with_page(self, offset: int, limit: int) -> Self:
        """The same query for another page."""
        return self.model_copy(update={"offset": offset, "limit": limit})


class ListJobsQuery(JobsQuery):
    """Query of ``GET /v1/{project_id}/smart-live-jobs``: adds fuzzy ``room_name``."""

    room_name: str | None = Field(None, min_length=1, max_length=256)


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for item in error.errors():
        param = str(item["loc"][0]) if item["loc"] else "query"
        if item["type"] == "extra_forbidden":
            message = "unknown query parameter"
        elif param == "state" and item["type"] == "literal_error":
            message = f"unknown state {item['input']!r}; expected one of {', '.join(JOB_STATES)}"
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
        problems.append((param, message))
    return problems
